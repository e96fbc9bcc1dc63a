/**
 * JWT bearer tokens (jose): HS256 with a shared secret, or RS256 / ES256 with a JWKS (a file, or a URL fetched
 * and cached by jose). Issuer and audience are checked when configured, with a clock skew; the algorithm is
 * pinned to the key type (so `alg: none` and HS/RS confusion are refused); `exp` is required. The role comes
 * from a claim (default `role`, or the first known role in a `roles` list), the models a client may use from
 * another (default `models`; absent: all).
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import { readBoundedFile } from "../config/index.js";
import type { Identity } from "./api-keys.js";
import { ROLES, type Role } from "./roles.js";

export interface JwtSettings {
  readonly hs256_secret_file?: string | undefined;
  readonly jwks_file?: string | undefined;
  readonly jwks_url?: string | undefined;
  readonly issuer?: string | undefined;
  readonly audience?: string | undefined;
  readonly clock_skew_s: number;
  readonly role_claim: string;
  readonly models_claim: string;
}

/** Why a token is refused (the answer names it, never the token). */
export type TokenRefusal = "malformed" | "expired" | "bad_signature" | "bad_claims" | "no_role";

export interface JwtVerifier {
  verify(token: string): Promise<{ identity: Identity } | { refused: TokenRefusal; detail: string }>;
}

/** A key or secret file is small: a larger one is another file. */
const MAX_KEY_FILE_BYTES = 1024 * 1024;

/** A verifier for the settings. @throws Error when a key file cannot be read or parsed. */
export function createJwtVerifier(settings: JwtSettings, options: { now?: () => number } = {}): JwtVerifier {
  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[];
  if (settings.hs256_secret_file !== undefined) {
    const secret = readBoundedFile(settings.hs256_secret_file, MAX_KEY_FILE_BYTES);
    if (secret.length < 32)
      throw new Error(`${settings.hs256_secret_file}: an HS256 secret needs at least 32 bytes`);
    key = new Uint8Array(secret);
    algorithms = ["HS256"];
  } else if (settings.jwks_file !== undefined) {
    key = createLocalJWKSet(
      JSON.parse(readBoundedFile(settings.jwks_file, MAX_KEY_FILE_BYTES).toString("utf8")),
    );
    algorithms = ["RS256", "ES256"];
  } else if (settings.jwks_url !== undefined) {
    key = createRemoteJWKSet(new URL(settings.jwks_url), { timeoutDuration: 5000, cooldownDuration: 30_000 });
    algorithms = ["RS256", "ES256"];
  } else {
    throw new Error("JWT settings need hs256_secret_file, jwks_file or jwks_url");
  }
  const now = options.now;
  return {
    async verify(token) {
      let payload: JWTPayload;
      try {
        const verified = await jwtVerify(token, key as Uint8Array, {
          algorithms,
          requiredClaims: ["exp"],
          clockTolerance: settings.clock_skew_s,
          ...(settings.issuer !== undefined ? { issuer: settings.issuer } : {}),
          ...(settings.audience !== undefined ? { audience: settings.audience } : {}),
          ...(now !== undefined ? { currentDate: new Date(now()) } : {}),
        });
        payload = verified.payload;
      } catch (error) {
        const detail = error instanceof Error ? error.message : String(error);
        if (error instanceof joseErrors.JWTExpired) return { refused: "expired", detail };
        if (error instanceof joseErrors.JWTClaimValidationFailed) return { refused: "bad_claims", detail };
        if (
          error instanceof joseErrors.JWSSignatureVerificationFailed ||
          error instanceof joseErrors.JWKSNoMatchingKey ||
          error instanceof joseErrors.JOSEAlgNotAllowed
        )
          return { refused: "bad_signature", detail };
        return { refused: "malformed", detail };
      }
      const role = roleOf(payload[settings.role_claim]);
      if (role === undefined) {
        return {
          refused: "no_role",
          detail: `the token's ${settings.role_claim} claim names no Warden role (${ROLES.join(", ")})`,
        };
      }
      const models = payload[settings.models_claim];
      const subject = typeof payload.sub === "string" ? payload.sub : "unknown";
      return {
        identity: {
          id: `jwt:${payload.iss ?? ""}:${subject}`,
          name: subject,
          role,
          // Only a client's reach is limited to models (docs/security.md): the claim is not a limit for other roles.
          models:
            role === "client" && Array.isArray(models) && models.every((m) => typeof m === "string")
              ? models
              : null,
          via: "jwt",
        },
      };
    },
  };
}

function roleOf(claim: unknown): Role | undefined {
  const list = Array.isArray(claim) ? claim : [claim];
  // The first role named: the issuer decides the order.
  for (const c of list) if ((ROLES as readonly unknown[]).includes(c)) return c as Role;
  return undefined;
}
