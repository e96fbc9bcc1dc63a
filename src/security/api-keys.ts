/**
 * API keys: `wdn_<id>_<secret>` (id: 12 hex digits, the lookup; secret: 32 random bytes, base64url), shown once
 * when made and stored only as a salted SHA-256 of the secret, in `<data_dir>/auth.sqlite` (WAL). A key has a
 * role, optionally the models it may use, an optional expiry; it can be rotated (a new secret under a new id,
 * the old one revoked, optionally after a grace period) and revoked. The secrets are 256-bit random values, so
 * a fast salted hash is the right tool (a password hash would only slow every request down); the comparison
 * is constant-time.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { WardenError } from "../errors/index.js";
import { ROLES, type Role } from "./roles.js";

/** A key's public description (never its secret). */
export interface ApiKeyInfo {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  /** Models a `client` key may decide with; null: all. */
  readonly models: readonly string[] | null;
  readonly created_at: string;
  readonly created_by: string;
  readonly expires_at: string | null;
  readonly revoked_at: string | null;
  /** The key this one replaced, when it was made by a rotation. */
  readonly rotated_from: string | null;
}

/** A key just made: its secret form, shown once. */
export interface IssuedKey extends ApiKeyInfo {
  readonly key: string;
}

/** Who a request is, once authenticated. */
export interface Identity {
  /** `key:<id>` or `jwt:<issuer>:<subject>`: what the ledger and the rate limits name. */
  readonly id: string;
  /** A readable name (the key's name, the token's subject). */
  readonly name: string;
  readonly role: Role;
  readonly models: readonly string[] | null;
  readonly via: "api_key" | "jwt";
}

/** Why a presented key is not accepted (the answer says which, never more). */
export type KeyRefusal = "malformed" | "unknown" | "revoked" | "expired";

export interface KeyStore {
  create(options: {
    name: string;
    role: Role;
    models?: readonly string[] | null;
    expiresAt?: string | null;
    createdBy: string;
  }): IssuedKey;
  /** The identity of a presented key, or why it is refused. O(1): one indexed lookup and one hash. */
  verify(presented: string): { identity: Identity } | { refused: KeyRefusal };
  list(): ApiKeyInfo[];
  get(id: string): ApiKeyInfo | undefined;
  /** A new key with the same name, role and models; the old one is revoked now or after `graceSeconds`. */
  rotate(id: string, by: string, graceSeconds?: number): IssuedKey;
  revoke(id: string, by: string): ApiKeyInfo;
  /**
   * Remove a key that was never handed to anyone (the first admin key, when its file could not be written), so
   * that the next start makes one again. Not for keys in use: those are revoked, which keeps their history.
   */
  discard(id: string): void;
  count(): number;
  close(): void;
}

const KEY = /^wdn_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

/** Whether a bearer token looks like a Warden API key (rather than a JWT). */
export function looksLikeApiKey(token: string): boolean {
  return token.startsWith("wdn_");
}

interface Row {
  id: string;
  name: string;
  role: string;
  models: string | null;
  salt: Buffer;
  hash: Buffer;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
  rotated_from: string | null;
}

function info(row: Row): ApiKeyInfo {
  return {
    id: row.id,
    name: row.name,
    role: row.role as Role,
    models: row.models === null ? null : (JSON.parse(row.models) as string[]),
    created_at: row.created_at,
    created_by: row.created_by,
    expires_at: row.expires_at,
    revoked_at: row.revoked_at,
    rotated_from: row.rotated_from,
  };
}

function digest(salt: Buffer, secret: string): Buffer {
  return createHash("sha256").update(salt).update(secret).digest();
}

/** The key store of a data folder (`auth.sqlite`, made when missing). */
export function openKeyStore(dataDir: string, options: { now?: () => number } = {}): KeyStore {
  const now = options.now ?? Date.now;
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, "auth.sqlite"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    models TEXT,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    rotated_from TEXT
  )`);
  const insert = db.prepare(
    `INSERT INTO api_keys (id, name, role, models, salt, hash, created_at, created_by, expires_at, revoked_at, rotated_from)
     VALUES (@id, @name, @role, @models, @salt, @hash, @created_at, @created_by, @expires_at, NULL, @rotated_from)`,
  );
  const byId = db.prepare("SELECT * FROM api_keys WHERE id = ?");
  const all = db.prepare("SELECT * FROM api_keys ORDER BY created_at, id");
  const revokeAt = db.prepare(
    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND (revoked_at IS NULL OR revoked_at > ?)",
  );
  const counted = db.prepare("SELECT count(*) AS n FROM api_keys");
  const removed = db.prepare("DELETE FROM api_keys WHERE id = ?");
  const iso = (ms: number) => new Date(ms).toISOString();

  const notFound = (id: string) =>
    new WardenError("WARDEN_ERR_KEY_NOT_FOUND", `no API key with id ${JSON.stringify(id.slice(0, 40))}`, {
      details: [
        {
          field: "id",
          expected: "the id of an API key (GET /v1/admin/keys lists them)",
          found: id.slice(0, 40),
        },
      ],
    });

  const create = (o: Parameters<KeyStore["create"]>[0], rotatedFrom: string | null = null): IssuedKey => {
    if (!(ROLES as readonly string[]).includes(o.role)) throw new RangeError(`unknown role ${o.role}`);
    const id = randomBytes(6).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    const salt = randomBytes(16);
    const row: Row = {
      id,
      name: o.name,
      role: o.role,
      models: o.models === undefined || o.models === null ? null : JSON.stringify([...o.models]),
      salt,
      hash: digest(salt, secret),
      created_at: iso(now()),
      created_by: o.createdBy,
      expires_at: o.expiresAt ?? null,
      revoked_at: null,
      rotated_from: rotatedFrom,
    };
    insert.run(row);
    return { ...info(row), key: `wdn_${id}_${secret}` };
  };

  return {
    create: (o) => create(o),
    verify(presented) {
      const match = KEY.exec(presented);
      if (match === null) return { refused: "malformed" };
      const row = byId.get(match[1]) as Row | undefined;
      // The hash is computed whether or not the id exists, so that timing says nothing about which ids do.
      const computed = digest(row?.salt ?? Buffer.alloc(16), match[2]!);
      if (row === undefined || !timingSafeEqual(computed, row.hash)) return { refused: "unknown" };
      const t = now();
      if (row.revoked_at !== null && Date.parse(row.revoked_at) <= t) return { refused: "revoked" };
      if (row.expires_at !== null && Date.parse(row.expires_at) <= t) return { refused: "expired" };
      const k = info(row);
      return {
        // Only a client's reach is limited to models; a list on a key of another role (made before that was
        // refused) is not a limit.
        identity: {
          id: `key:${k.id}`,
          name: k.name,
          role: k.role,
          models: k.role === "client" ? k.models : null,
          via: "api_key",
        },
      };
    },
    list: () => (all.all() as Row[]).map(info),
    get(id) {
      const row = byId.get(id) as Row | undefined;
      return row === undefined ? undefined : info(row);
    },
    rotate(id, by, graceSeconds = 0) {
      const row = byId.get(id) as Row | undefined;
      if (row === undefined) throw notFound(id);
      const old = info(row);
      if (old.revoked_at !== null && Date.parse(old.revoked_at) <= now()) {
        throw new WardenError("WARDEN_ERR_CONFLICT", `API key ${id} is revoked; it cannot be rotated`, {
          details: [
            {
              field: "id",
              expected: "a key that is not revoked",
              found: `revoked at ${old.revoked_at}`,
              fix: "create a new key instead",
            },
          ],
        });
      }
      return db.transaction(() => {
        const issued = create(
          { name: old.name, role: old.role, models: old.models, expiresAt: old.expires_at, createdBy: by },
          id,
        );
        const at = iso(now() + graceSeconds * 1000);
        revokeAt.run(at, id, at);
        return issued;
      })();
    },
    revoke(id, _by) {
      const row = byId.get(id) as Row | undefined;
      if (row === undefined) throw notFound(id);
      const at = iso(now());
      revokeAt.run(at, id, at);
      return info(byId.get(id) as Row);
    },
    discard: (id) => {
      removed.run(id);
    },
    count: () => (counted.get() as { n: number }).n,
    close: () => db.close(),
  };
}
