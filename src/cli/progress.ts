/** A progress bar on stderr for long runs (only on a terminal; silent in pipes and CI logs). */
import cliProgress from 'cli-progress';

export class ProgressReporter {
  private bar: cliProgress.SingleBar | null = null;
  constructor(private readonly enabled: boolean, private readonly unit: string) {}

  update(done: number, total: number, item: string): void {
    if (!this.enabled || !process.stderr.isTTY) return;
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar(
        { stream: process.stderr, format: ` {bar} {value}/{total} ${this.unit} {item}`, hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, { item: '' });
    }
    this.bar.setTotal(total);
    this.bar.update(done, { item });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
