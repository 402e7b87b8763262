/**
 * One task's output on its way to the client: text written to stdout and stderr is batched, so
 * that a task printing line by line does not send a message per line, yet it leaves while the
 * task runs; rich output keeps its place after the text written before it; and a task that
 * writes without end is cut off, so its output cannot swamp the engine, the controller and the
 * client.
 */
import type { OutputEvent } from './kernel';

/** Stream output is sent at least this often while a task writes. */
const FLUSH_MS = 50;
/** Stream output is sent once this much of it waits, whatever the time. */
const FLUSH_BYTES = 64 * 1024;
/** Output a task may send; past it the rest is dropped with a notice, sparing every process. */
export const OUTPUT_LIMIT = 10 * 1024 * 1024;

const TRUNCATED: OutputEvent = {
  type: 'stream',
  content: {
    name: 'stderr',
    text: `\n[output truncated: the task wrote more than ${OUTPUT_LIMIT / (1024 * 1024)} MB; the rest of its output is dropped]\n`,
  },
};

/** The output of one task; see the file's comment. Made with the task, ended with it. */
export class TaskOutput {
  private readonly pending = { stdout: '', stderr: '' };
  /** The first output of a task leaves at once, even if the task then blocks the thread. */
  private lastFlush = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** Characters sent so far, and whether the rest was cut off. */
  private sent = 0;
  private truncated = false;
  /** Whether any of the output has left: the task's reply must not overtake it. */
  anySent = false;

  /** `send` delivers one event to the client, credited to the task. */
  constructor(private readonly send: (event: OutputEvent) => void) {}

  /** Text the task wrote to stdout or stderr; sent within `FLUSH_MS`. */
  write(name: 'stdout' | 'stderr', text: string): void {
    this.pending[name] += text;
    const waiting = this.pending.stdout.length + this.pending.stderr.length;
    // Synchronous user code never yields to a timer, so the write itself sends when it is due.
    if (waiting >= FLUSH_BYTES || performance.now() - this.lastFlush >= FLUSH_MS) {
      this.flush();
    } else {
      this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
    }
  }

  /** Display data, published data or a cell's result: sent now, after the text written before it. */
  emit(event: OutputEvent): void {
    this.flush();
    this.deliver(event);
  }

  /** Sends the text waiting to be sent. Call when the task ends, before its reply. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lastFlush = performance.now();
    for (const name of ['stdout', 'stderr'] as const) {
      const text = this.pending[name];
      if (text.length === 0) continue;
      this.pending[name] = '';
      this.deliver({ type: 'stream', content: { name, text } });
    }
  }

  private deliver(event: OutputEvent): void {
    if (this.truncated) return;
    this.sent +=
      event.type === 'stream'
        ? event.content.text.length
        : event.type === 'data_message'
          ? event.buffers.reduce((n, b) => n + b.length, 0)
          : JSON.stringify(event.content).length;
    if (this.sent > OUTPUT_LIMIT) {
      this.truncated = true;
      event = TRUNCATED;
    }
    this.anySent = true;
    this.send(event);
  }
}
