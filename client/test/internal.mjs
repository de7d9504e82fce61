// The helpers notify.js keeps to itself, for the unit tests. notify.js is served as one file
// (notify.ClientHandler embeds it), so its internals cannot move to a module of their own; its
// exports are the public API only. This loads the same source with an export list appended.
import { readFileSync } from "node:fs";

const src = readFileSync(new URL("../notify.js", import.meta.url), "utf8");
const names = [
  "backoffDelay", "rateLimitDelay", "closeAction", "parseFrame", "Dedup", "positionOf", "withPosition",
  "withServerTopics", "resolveURL", "inboxURL", "jwtExp", "Tokens", "storedEvent", "Host", "clientURL",
];
const mod = await import("data:text/javascript;base64," +
  Buffer.from(`${src}\nexport { ${names.join(", ")} };\n`).toString("base64"));

export const {
  backoffDelay, rateLimitDelay, closeAction, parseFrame, Dedup, positionOf, withPosition,
  withServerTopics, resolveURL, inboxURL, jwtExp, Tokens, storedEvent, Host, clientURL,
  CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_ABNORMAL, CLOSE_TOO_BIG, CLOSE_TOKEN_EXPIRED,
  CLOSE_SIGNED_OUT, CLOSE_SLOW_CONSUMER, CLOSE_PROTOCOL_ABUSE, CLOSE_RATE_LIMITED,
} = mod;
