import { ERRORS, type ErrorCode, WardenError } from "../errors/index.js";
import type { RowTask, RowTaskResult } from "./row-tasks.js";
import type { EngineOutput } from "./types.js";
import type { ModelExecutor } from "./worker-pool.js";

/** Dynamic batching policy, with Triton's meaning for each field. */
export interface BatchingPolicy {
  /** Largest batch handed to the model, in rows. */
  readonly max_batch_size: number;
  /** How long the oldest queued row may wait for more rows before a smaller batch is sent, in µs. */
  readonly max_queue_delay_us: number;
  /** Batch sizes the batcher sends as soon as it can form them (the largest it can). */
  readonly preferred_batch_sizes: readonly number[];
  /** Rows allowed to wait; a request that would exceed it is refused at once (WARDEN_ERR_QUEUE_FULL). */
  readonly max_queue_size: number;
  /**
   * A request not answered within this many ms fails: WARDEN_ERR_QUEUE_TIMEOUT (503) when none of its rows was
   * sent to the model while the model kept answering others (it is overloaded; Triton's queue timeout),
   * WARDEN_ERR_TIMEOUT (504) otherwise: the model has rows of it, or answered nothing since it was queued (a
   * model too slow or stuck, which the circuit breaker must see).
   */
  readonly timeout_ms: number;
}

/** One row's result: its slice of the batch output. */
export interface RowResult {
  readonly values: Float64Array;
  readonly margins: Float64Array | undefined;
  readonly kind: EngineOutput["kind"];
  /** Rows in the batch this row ran in. */
  readonly batchSize: number;
  /** Time the row waited in the queue, ms. */
  readonly queueMs: number;
  /** Time the batch took in the model (including the hop to its worker), ms. */
  readonly inferenceMs: number;
  /** The outcome of the row's task, when it had one. */
  readonly task?: RowTaskResult | undefined;
}

/** What the batcher reports for metrics. */
export interface BatcherObserver {
  onBatch?(size: number, inferenceMs: number): void;
  onQueueDepth?(rows: number): void;
}

interface PendingRequest {
  readonly rows: Float32Array[];
  readonly tasks: readonly (RowTask | undefined)[] | undefined;
  readonly results: RowResult[];
  remaining: number;
  /** When it was queued (performance.now()). */
  readonly enqueuedAt: number;
  /** Rows of this request still in the queue (not yet dispatched). */
  queued: number;
  settled: boolean;
  readonly resolve: (results: RowResult[]) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Whole requests from the queue's head that fit a batch (DynamicBatcher.#fitted). */
interface Fit {
  /** Row counts that end on a request's last queued row. */
  readonly sizes: Set<number>;
  /** The largest of them (0: none). */
  total: number;
  /** Queue index where the walk continues. */
  next: number;
  /** The request at `next` does not fit with them. */
  blocked: boolean;
}

interface QueuedRow {
  readonly request: PendingRequest;
  readonly index: number;
  readonly enqueuedAt: number;
}

const nowMs = (): number => performance.now();

/**
 * Per-model dynamic batcher, with Triton's rules. Rows from concurrent requests are queued and, whenever an
 * instance is free, sent to the model together:
 *
 * - once the oldest row has waited `max_queue_delay_us`, as many whole requests as fit in `max_batch_size`;
 * - before that, at once, a full batch (`max_batch_size`) or else the largest preferred size that whole waiting
 *   requests fill, or what fits when the next request would not; otherwise the rows wait for company until the
 *   delay is spent.
 *
 * Batches end on request boundaries: a request is split only when its rows alone exceed `max_batch_size`.
 *
 * While every instance is busy, rows keep accumulating (so load turns into larger batches, not longer queues
 * of small ones). A request with more rows than `max_batch_size` (the decision API's `instances`, `warden
 * predict`'s chunks) is split over consecutive batches: once some of its rows are sent, the rest do not wait
 * for the delay again, so it waits at most the delay plus one inference per batch it needs.
 */
export class DynamicBatcher {
  readonly #policy: BatchingPolicy;
  readonly #executor: ModelExecutor;
  readonly #featureCount: number;
  readonly #observer: BatcherObserver;
  readonly #delayMs: number;
  /** `max_batch_size` and the preferred sizes below it, largest first. */
  readonly #preferred: readonly number[];
  /**
   * Rows in arrival order from `#head` on. A slot is emptied when its row leaves the queue (dispatched, or its
   * request settled), so that an answered request (its rows, tasks and results) is not kept alive by the slots
   * before `#head` until the array is next compacted.
   */
  #queue: (QueuedRow | undefined)[] = [];
  #head = 0;
  /** Live (not timed-out) rows in the queue. */
  #queuedRows = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #turn: NodeJS.Immediate | undefined;
  #closed = false;
  /** See #fitted. */
  #fit: Fit | undefined;
  /** When a batch last came back from the model with an answer: whether the model is making progress. */
  #lastCompletionAt = Number.NEGATIVE_INFINITY;
  /** Requests taken and not yet settled. */
  #unsettled = 0;
  #drainWaiters: (() => void)[] = [];

  constructor(
    policy: BatchingPolicy,
    executor: ModelExecutor,
    featureCount: number,
    observer: BatcherObserver = {},
  ) {
    this.#policy = policy;
    this.#executor = executor;
    this.#featureCount = featureCount;
    this.#observer = observer;
    this.#delayMs = policy.max_queue_delay_us / 1000;
    // A full batch always goes at once, whatever the preferred sizes.
    const preferred = policy.preferred_batch_sizes.filter((s) => s >= 1 && s <= policy.max_batch_size);
    this.#preferred = [...new Set([policy.max_batch_size, ...preferred])].sort((a, b) => b - a);
    executor.onIdle(() => this.#schedule());
  }

  /** Rows waiting now. */
  get queueDepth(): number {
    return this.#queuedRows;
  }

  /**
   * Queue one request's rows (each `featureCount` float32 values) and resolve with one result per row, in
   * order. `tasks`, when given, has one entry per row (undefined for none): work the worker does for the row
   * beside inference (row-tasks.ts), whose outcome comes back as the row's `task`. Rejects at once with
   * WARDEN_ERR_QUEUE_FULL when the queue cannot take them.
   */
  submit(rows: Float32Array[], tasks?: readonly (RowTask | undefined)[]): Promise<RowResult[]> {
    if (this.#closed) return Promise.reject(new WardenError("WARDEN_ERR_SHUTTING_DOWN"));
    if (rows.length === 0) return Promise.resolve([]);
    if (rows.length > this.#policy.max_queue_size) {
      // Waiting would never help: this request alone is larger than the queue.
      return Promise.reject(
        new WardenError(
          "WARDEN_ERR_BAD_REQUEST",
          `the request has ${rows.length} rows; this model's queue holds at most ${this.#policy.max_queue_size}`,
          {
            details: [
              {
                field: "instances",
                expected: `at most ${this.#policy.max_queue_size} rows (batching.max_queue_size)`,
                found: `${rows.length}`,
                fix: "split the request",
              },
            ],
          },
        ),
      );
    }
    if (this.#queuedRows + rows.length > this.#policy.max_queue_size) {
      return Promise.reject(
        new WardenError(
          "WARDEN_ERR_QUEUE_FULL",
          `the model's queue holds ${this.#queuedRows} of at most ${this.#policy.max_queue_size} rows; retry shortly`,
          { retryAfterSeconds: 1 },
        ),
      );
    }
    return new Promise<RowResult[]>((resolve, reject) => {
      const enqueuedAt = nowMs();
      const request: PendingRequest = {
        rows,
        tasks,
        results: new Array<RowResult>(rows.length),
        remaining: rows.length,
        enqueuedAt,
        queued: rows.length,
        settled: false,
        resolve,
        reject,
        timer: setTimeout(() => this.#timeout(request), this.#policy.timeout_ms),
      };
      this.#unsettled++;
      for (let i = 0; i < rows.length; i++) this.#queue.push({ request, index: i, enqueuedAt });
      this.#queuedRows += rows.length;
      this.#observer.onQueueDepth?.(this.#queuedRows);
      // With no queue delay, rows that arrive in the same event-loop turn still travel together (see below).
      if (this.#delayMs === 0) this.#scheduleThisTurn();
      else this.#schedule();
    });
  }

  /** Stop taking requests; queued ones still run. */
  close(): void {
    this.#closed = true;
  }

  /** Requests taken and not yet answered (queued or running). */
  get unsettled(): number {
    return this.#unsettled;
  }

  /** Resolves once every request taken so far is settled (answered, failed or timed out). */
  drained(): Promise<void> {
    if (this.#unsettled === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #settledOne(): void {
    if (--this.#unsettled === 0 && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  #timeout(request: PendingRequest): void {
    const ms = this.#policy.timeout_ms;
    // Back-pressure only when none of it reached the model and the model kept answering meanwhile: a model that
    // has hung answers nothing, and every request waiting for it must count against it.
    const overloaded = request.queued === request.rows.length && this.#lastCompletionAt > request.enqueuedAt;
    this.#fail(
      request,
      overloaded
        ? new WardenError(
            "WARDEN_ERR_QUEUE_TIMEOUT",
            `waited ${ms} ms (batching.timeout_ms) in the model's queue without being sent to the model; it is overloaded`,
            { retryAfterSeconds: 1 },
          )
        : new WardenError(
            "WARDEN_ERR_TIMEOUT",
            `the model did not answer within ${ms} ms (batching.timeout_ms): it is slow or stuck`,
            { retryAfterSeconds: 1 },
          ),
    );
  }

  /** Fail every request with rows still queued (nothing can run them now). */
  #failQueued(error: WardenError): void {
    for (let i = this.#head; i < this.#queue.length; i++) {
      const row = this.#queue[i];
      if (row !== undefined) this.#fail(row.request, error);
    }
    this.#dropSettledHead();
  }

  /** Settle a request with an error; its rows still queued are skipped when reached. */
  #fail(request: PendingRequest, error: Error): void {
    if (request.settled) return;
    request.settled = true;
    this.#fit = undefined;
    clearTimeout(request.timer);
    this.#settledOne();
    // Its rows still queued are skipped when reached; they leave the live depth now.
    this.#queuedRows -= request.queued;
    request.queued = 0;
    this.#observer.onQueueDepth?.(this.#queuedRows);
    request.reject(error);
  }

  #dropSettledHead(): void {
    while (this.#head < this.#queue.length && this.#queue[this.#head]!.request.settled) {
      this.#queue[this.#head++] = undefined;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
      this.#fit = undefined; // its place in the queue moved
    }
  }

  /**
   * Schedule once the current event-loop turn has run. Requests that arrive together (one poll of the sockets
   * often reads several) then share one batch and one hand-off to a worker instead of the first going alone:
   * waking a worker thread costs far more than the rest of the turn, and the turn runs anyway.
   */
  #scheduleThisTurn(): void {
    this.#turn ??= setImmediate(() => {
      this.#turn = undefined;
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#queuedRows > 0 && this.#executor.liveCount() === 0) {
      this.#failQueued(
        new WardenError(
          "WARDEN_ERR_MODEL_NOT_READY",
          "the model has no running instance (its workers stopped and are being restarted; the server log says why)",
          { retryAfterSeconds: 1 },
        ),
      );
      return;
    }
    for (;;) {
      this.#dropSettledHead();
      if (this.#queuedRows === 0) {
        this.#cancelWake();
        return;
      }
      if (this.#executor.idleCount() === 0) return;
      const oldest = this.#queue[this.#head]!;
      const waited = nowMs() - oldest.enqueuedAt;
      const fit = this.#fitted();
      let size: number | undefined;
      // The oldest row's request has rows in the model already: the rest of it goes on without waiting again.
      const continuing = oldest.request.queued < oldest.request.rows.length;
      if (waited >= this.#delayMs || continuing) {
        // Delay spent: as many whole requests as fit in max_batch_size (Triton does the same); a request larger
        // than that alone is split.
        size = fit.total > 0 ? fit.total : Math.min(oldest.request.queued, this.#policy.max_batch_size);
      } else if (fit.total === 0) {
        // The oldest request alone is larger than a batch: a full batch of it goes at once.
        size = this.#policy.max_batch_size;
      } else {
        // Before it: a full batch, else the largest preferred size that whole waiting requests fill, at once;
        // and when the next request does not fit, the batch cannot grow by waiting: it goes as it is.
        size = this.#preferred.find((p) => fit.sizes.has(p)) ?? (fit.blocked ? fit.total : undefined);
        if (size === undefined) {
          this.#wakeAfter(this.#delayMs - waited);
          return;
        }
      }
      this.#dispatch(size);
    }
  }

  /**
   * The batch sizes that end on a request's last queued row, from the head, up to `max_batch_size` (none when the
   * first request's queued rows alone exceed it), and whether the next request does not fit (`blocked`). A
   * request is only split when it does not fit a batch. Kept between calls and extended over new arrivals only,
   * so that a long queue is walked once, not on every arrival; dropped when the queue's head changes
   * (a dispatch, a request failing or timing out).
   */
  #fitted(): Fit {
    let fit = this.#fit;
    if (fit === undefined) {
      fit = { sizes: new Set(), total: 0, next: this.#head, blocked: false };
      this.#fit = fit;
    }
    if (fit.blocked) return fit;
    const max = this.#policy.max_batch_size;
    let i = fit.next;
    while (i < this.#queue.length) {
      const row = this.#queue[i];
      if (row === undefined || row.request.settled) {
        i++;
        continue;
      }
      const rows = row.request.queued;
      if (fit.total + rows > max) {
        fit.blocked = true;
        break;
      }
      fit.total += rows;
      fit.sizes.add(fit.total);
      // Its queued rows are consecutive: skip them (settled requests in between hold no live rows).
      i += rows;
    }
    fit.next = i;
    return fit;
  }

  #cancelWake(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }

  /**
   * Re-check the queue after `ms`. setTimeout cannot wait less than 1 ms, so sub-millisecond delays
   * (Triton's default scale) poll on setImmediate, which still lets I/O run between checks.
   */
  #wakeAfter(ms: number): void {
    if (this.#timer !== undefined || this.#immediate !== undefined) return;
    const wake = () => {
      this.#timer = undefined;
      this.#immediate = undefined;
      this.#schedule();
    };
    // Not kept alive by the wake-up alone: a queued request's own timeout timer keeps the process running.
    if (ms >= 2) this.#timer = setTimeout(wake, Math.floor(ms - 1)).unref();
    else this.#immediate = setImmediate(wake);
  }

  #dispatch(size: number): void {
    this.#fit = undefined;
    const taken: QueuedRow[] = [];
    while (taken.length < size && this.#head < this.#queue.length) {
      const row = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined;
      if (!row.request.settled) {
        row.request.queued--;
        taken.push(row);
      }
    }
    this.#queuedRows -= taken.length;
    this.#observer.onQueueDepth?.(this.#queuedRows);
    const width = this.#featureCount;
    const input = new Float32Array(taken.length * width);
    taken.forEach((row, r) => {
      input.set(row.request.rows[row.index]!, r * width);
    });
    let tasks: (RowTask | null)[] | undefined;
    taken.forEach((row, r) => {
      const task = row.request.tasks?.[row.index];
      if (task === undefined) return;
      tasks ??= new Array<RowTask | null>(taken.length).fill(null);
      tasks[r] = task;
    });
    const started = nowMs();
    this.#executor.run(input, taken.length, tasks).then(
      (output) => {
        this.#lastCompletionAt = nowMs();
        const inferenceMs = nowMs() - started;
        this.#observer.onBatch?.(taken.length, inferenceMs);
        const w = output.width;
        const mw = output.marginWidth ?? 0;
        taken.forEach((row, r) => {
          const request = row.request;
          if (request.settled) return;
          const failed = output.tasks?.[r]?.error;
          if (failed !== undefined) {
            const code = (failed.code in ERRORS ? failed.code : "WARDEN_ERR_INTERNAL") as ErrorCode;
            this.#fail(request, new WardenError(code, failed.message));
            return;
          }
          request.results[row.index] = {
            values: output.values.subarray(r * w, (r + 1) * w),
            margins: output.margins?.subarray(r * mw, (r + 1) * mw),
            kind: output.kind,
            batchSize: taken.length,
            queueMs: started - row.enqueuedAt,
            inferenceMs,
            task: output.tasks?.[r] ?? undefined,
          };
          if (--request.remaining === 0) {
            request.settled = true;
            clearTimeout(request.timer);
            this.#settledOne();
            request.resolve(request.results);
          }
        });
      },
      (error: unknown) => {
        // A failed batch is no sign of progress: requests queued behind it that time out count against the model.
        this.#observer.onBatch?.(taken.length, nowMs() - started);
        for (const row of taken) this.#fail(row.request, error as Error);
      },
    );
  }
}
