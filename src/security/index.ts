/**
 * Security as a room: API keys (`api-keys.ts`), JWT verification (`jwt.ts`), roles and the permission each
 * route needs (`roles.ts`). The server's access hook (server/access.ts) puts them in the request path.
 */
export * from "./api-keys.js";
export * from "./jwt.js";
export * from "./roles.js";
