/**
 * Diagnostics go to stderr, never stdout: stdout is reserved for command results (JSON output).
 * The sink is injectable so tests and embedders can capture messages.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function createLogger(level: LogLevel = 'warn', sink: (line: string) => void = defaultSink): Logger {
  const at = (l: LogLevel) => (msg: string) => {
    if (ORDER[l] >= ORDER[level]) sink(`modelpress: ${msg}`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function defaultSink(line: string): void {
  // process.stderr exists in Node and in Deno's node compatibility layer.
  process.stderr.write(line + '\n');
}

export const silentLogger: Logger = createLogger('silent');
