/**
 * Sends alerts: every alert is logged, and posted as Alertmanager's webhook payload (version 4) to each
 * configured webhook (`alerts.webhooks` in the server configuration). Sending never blocks the caller: each
 * webhook has its own queue, delivered in order, one notification at a time, with a timeout per attempt and
 * bounded retries with doubling backoff on network errors, timeouts, 429 and 5xx; what still fails is logged
 * and dropped. The episode logic (fire once, resolve once) is monitor/alerts.ts.
 */
import type { FastifyBaseLogger } from "fastify";
import type { ServerConfig } from "../config/index.js";
import {
  type Alert,
  type AlertEpisodes,
  type AlertEvent,
  alertmanagerPayload,
  createAlertEpisodes,
} from "../monitor/index.js";

/**
 * A webhook's address as logs may show it: scheme and host only (a receiver's token often sits in the path,
 * as in chat webhooks, or in the query).
 */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return "(an invalid URL)";
  }
}
/** Notifications a webhook's queue holds at most; beyond it the newest are dropped (and logged). */
export const MAX_QUEUED_NOTIFICATIONS = 1000;
/** Longest wait between two attempts. */
const MAX_BACKOFF_MS = 30_000;

/** Where the rest of Warden raises alerts. */
export interface AlertSink {
  /**
   * Fire or resolve from an event's own status (`status: "resolved"` or an `endsAt` resolves). The review
   * queue's escalations `{name, severity, labels, annotations, startsAt}` fire; sending the same alert (same
   * name, severity and labels) again while it fires sends nothing.
   */
  emit(event: AlertEvent): void;
  /** Fire this alert (nothing if it is already firing). */
  fire(event: AlertEvent): void;
  /** Resolve this alert (nothing if it is not firing). */
  resolve(event: AlertEvent): void;
  /** The alert is active or not (undefined: no statement): fires or resolves only on a change. */
  set(event: AlertEvent, active: boolean | undefined): void;
  /** The alerts firing now. */
  firing(): readonly Alert[];
  /** Resolves once every notification queued so far is delivered or given up. */
  settled(): Promise<void>;
  /** Stop: wait at most `graceMs` for queued notifications, then drop the rest (logged). */
  close(graceMs?: number): Promise<void>;
}

export interface AlertSinkOptions {
  readonly logger?: FastifyBaseLogger | undefined;
  /** Milliseconds since the epoch (the server's clock). */
  readonly now?: (() => number) | undefined;
}

interface Webhook {
  readonly url: string;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  tail: Promise<void>;
  queued: number;
}

export function createAlertSink(config: ServerConfig["alerts"], options: AlertSinkOptions = {}): AlertSink {
  const now = options.now ?? Date.now;
  const log = options.logger;
  const episodes: AlertEpisodes = createAlertEpisodes();
  const webhooks: Webhook[] = config.webhooks.map((w) => ({
    url: w.url,
    timeoutMs: w.timeout_ms,
    maxAttempts: w.max_attempts,
    tail: Promise.resolve(),
    queued: 0,
  }));
  let closed = false;
  const timers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  const controllers = new Set<AbortController>();

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          timers.delete(entry);
          resolve();
        }, ms),
        wake: resolve,
      };
      timers.add(entry);
    });

  /** One attempt: true when delivered, false when worth retrying; throws when not (a 4xx). */
  const attempt = async (hook: Webhook, body: string): Promise<{ ok: boolean; why: string }> => {
    const controller = new AbortController();
    controllers.add(controller);
    const timer = setTimeout(() => controller.abort(), hook.timeoutMs);
    try {
      const response = await fetch(hook.url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "warden-alerts" },
        body,
        signal: controller.signal,
      });
      // The body is not needed; reading it frees the connection.
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return { ok: true, why: "" };
      const retry = response.status === 429 || response.status >= 500;
      if (!retry) throw new Error(`HTTP ${response.status} (not retried)`);
      return { ok: false, why: `HTTP ${response.status}` };
    } catch (error) {
      if ((error as Error).message.endsWith("(not retried)")) throw error;
      return {
        ok: false,
        why: controller.signal.aborted ? `no answer within ${hook.timeoutMs} ms` : (error as Error).message,
      };
    } finally {
      clearTimeout(timer);
      controllers.delete(controller);
    }
  };

  const deliver = async (hook: Webhook, alert: Alert, body: string): Promise<void> => {
    const about = { alertname: alert.labels.alertname, status: alert.status, webhook: safeUrl(hook.url) };
    for (let n = 1; n <= hook.maxAttempts; n++) {
      if (closed) {
        log?.warn(about, "alert not sent: the server stopped");
        return;
      }
      let result: { ok: boolean; why: string };
      try {
        result = await attempt(hook, body);
      } catch (error) {
        log?.error({ ...about, err: error }, "alert webhook refused the notification");
        return;
      }
      if (result.ok) {
        log?.debug({ ...about, attempts: n }, "alert delivered");
        return;
      }
      if (n === hook.maxAttempts) {
        log?.error(
          { ...about, attempts: n, reason: result.why },
          "alert webhook failed; notification dropped",
        );
        return;
      }
      if (closed) {
        log?.warn({ ...about, attempts: n, reason: result.why }, "alert not sent: the server stopped");
        return;
      }
      const delay = Math.min(MAX_BACKOFF_MS, config.backoff_ms * 2 ** (n - 1));
      log?.warn(
        { ...about, attempt: n, reason: result.why, retry_in_ms: delay },
        "alert webhook failed; retrying",
      );
      await wait(delay);
    }
  };

  const send = (alert: Alert | undefined): void => {
    if (alert === undefined) return;
    const line = {
      alert: alert.labels,
      status: alert.status,
      summary: alert.annotations.summary,
      startsAt: alert.startsAt,
      ...(alert.status === "resolved" ? { endsAt: alert.endsAt } : {}),
    };
    if (alert.status === "firing") {
      if (alert.labels.severity === "critical") log?.error(line, "alert firing");
      else log?.warn(line, "alert firing");
    } else log?.info(line, "alert resolved");
    if (closed || webhooks.length === 0) return;
    const body = JSON.stringify(
      alertmanagerPayload(
        [alert],
        config.external_url !== undefined ? { externalURL: config.external_url } : {},
      ),
    );
    for (const hook of webhooks) {
      if (hook.queued >= MAX_QUEUED_NOTIFICATIONS) {
        log?.error(
          { alertname: alert.labels.alertname, status: alert.status, webhook: safeUrl(hook.url) },
          `alert not sent: ${MAX_QUEUED_NOTIFICATIONS} notifications already wait for this webhook`,
        );
        continue;
      }
      hook.queued += 1;
      hook.tail = hook.tail
        .then(() => deliver(hook, alert, body))
        .catch((error: unknown) =>
          log?.error({ err: error, webhook: safeUrl(hook.url) }, "alert delivery failed"),
        )
        .finally(() => {
          hook.queued -= 1;
        });
    }
  };

  const withGenerator = (event: AlertEvent): AlertEvent =>
    event.generatorURL === undefined && config.external_url !== undefined
      ? { ...event, generatorURL: config.external_url }
      : event;

  const settled = async (): Promise<void> => {
    // A tail may be replaced while waiting (a notification queued meanwhile): wait until none is.
    for (;;) {
      const tails = webhooks.map((h) => h.tail);
      await Promise.all(tails);
      if (webhooks.every((h, i) => h.tail === tails[i])) return;
    }
  };

  return {
    emit: (event) => send(episodes.emit(withGenerator(event), now())),
    fire: (event) => send(episodes.set(withGenerator(event), true, now())),
    resolve: (event) =>
      send(
        event.endsAt !== undefined
          ? episodes.emit({ ...withGenerator(event), status: "resolved" }, now())
          : episodes.set(withGenerator(event), false, now()),
      ),
    set: (event, active) => send(episodes.set(withGenerator(event), active, now())),
    firing: () => episodes.firing(),
    settled,
    async close(graceMs = 2000) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        settled(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
      closed = true;
      for (const c of controllers) c.abort();
      for (const t of timers) {
        clearTimeout(t.timer);
        t.wake();
      }
      await Promise.all(webhooks.map((h) => h.tail));
    },
  };
}
