/**
 * The part of autocannon 9's programmatic API the benchmarks use. The package ships no type declarations
 * (and `@types/autocannon` is not a dependency), so these are written against its README and lib/run.js.
 */
declare module "autocannon" {
  import type { EventEmitter } from "node:events";

  namespace autocannon {
    /** One request in the sequence each connection loops over. */
    interface Request {
      readonly method?: string;
      readonly path?: string;
      readonly headers?: Readonly<Record<string, string>>;
      readonly body?: string;
    }

    interface Options {
      readonly url: string;
      readonly connections?: number;
      /** Seconds. */
      readonly duration?: number;
      /** Stop after this many requests in all (shared out among the connections) or at `duration`, whichever comes first. */
      readonly maxOverallRequests?: number;
      readonly requests?: readonly Request[];
      /** A run before the measured one, with its own connections and duration; its results come back as `warmup`. */
      readonly warmup?: { readonly connections: number; readonly duration: number };
    }

    interface Result {
      /** Seconds the run took. */
      readonly duration: number;
      /** Connection errors, timeouts included. */
      readonly errors: number;
      readonly non2xx: number;
      readonly "2xx": number;
      readonly warmup?: Result;
    }

    /** Emits `response` (client, status, bytes, ms) per response; resolves when the run ends. */
    interface Instance extends EventEmitter, PromiseLike<Result> {}
  }

  function autocannon(options: autocannon.Options): autocannon.Instance;
  export = autocannon;
}
