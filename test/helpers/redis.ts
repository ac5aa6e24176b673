/**
 * A throwaway Redis for queue tests and benchmarks: Debian's redis-server on a free loopback port,
 * persistence off, no eviction (BullMQ needs it), answered PING before it is handed out; stopped by
 * its own PID, never by name.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export function redisServerPath(): string {
  return spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPing(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const c = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => {});
    try {
      await c.connect();
      if ((await c.ping()) === 'PONG') return;
    } catch { /* not up yet */ } finally {
      c.disconnect();
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis-server did not answer PING at ${url}`);
}

export async function startRedis(bin = redisServerPath()): Promise<{ url: string; port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  await waitForPing(url);
  return {
    url, port,
    stop: async () => {
      proc.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
