/**
 * A progress line on stderr, redrawn in place on a terminal (no dependency), and printed every
 * few seconds as plain lines otherwise (CI logs, a pipe).
 */
export class Progress {
  private timer: NodeJS.Timeout | null = null;
  private lastPlain = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private readonly render: () => { done: number; total: number; text: string },
    private readonly quiet = false,
  ) {}

  start(everyMs = 250): void {
    if (this.quiet || this.timer) return;
    this.timer = setInterval(() => this.draw(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.quiet) {
      this.draw(true);
      if (this.tty) process.stderr.write('\n');
    }
  }

  private draw(force = false): void {
    const { done, total, text } = this.render();
    const share = total > 0 ? Math.min(1, done / total) : 0;
    const width = 24;
    const filled = Math.round(share * width);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(share * 100)).padStart(3)}% ${text}`;
    if (this.tty) {
      const cols = process.stderr.columns || 120;
      process.stderr.write(`\r${line.slice(0, cols - 1).padEnd(cols - 1)}`);
    } else if (force || Date.now() - this.lastPlain >= 5000) {
      this.lastPlain = Date.now();
      process.stderr.write(`${line}\n`);
    }
  }
}
