// react.js's applyChange, the reducer that keeps useInbox's items in step with the live inbox
// changes. React itself is not installed here: react.js is loaded with a stand-in for "react"
// (the hooks run in Chromium, example/npm_e2e_test.go).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const stub = "data:text/javascript," + encodeURIComponent(
  "export const useCallback = () => {}, useEffect = () => {}, useRef = () => {}, useState = () => {};");
const src = readFileSync(new URL("../react.js", import.meta.url), "utf8")
  .replace('from "react"', `from ${JSON.stringify(stub)}`)
  .replace('from "./notify.js"', `from ${JSON.stringify(new URL("../notify.js", import.meta.url).href)}`);
const { applyChange } = await import("data:text/javascript;base64," +
  Buffer.from(src + "\nexport { applyChange };\n").toString("base64"));

const n = (id, extra = {}) => ({ id, type: "t", createdAt: "2026-12-02T04:00:00Z", ...extra });
const counts = { unread: 0, unseen: 0, total: 0 };
const ids = (items) => items.map((m) => m.id + (m.readAt ? "r" : "") + (m.seenAt ? "s" : ""));

test("applyChange: each op", () => {
  const items = [n("b"), n("a", { readAt: "2026-12-02T05:00:00Z" })];
  const cases = [
    { name: "new goes first", change: { op: "new", notification: n("c"), counts }, want: ["c", "b", "ar"] },
    { name: "new already listed", change: { op: "new", notification: n("b"), counts }, want: ["b", "ar"] },
    { name: "read", change: { op: "read", ids: ["b"], counts }, want: ["br", "ar"] },
    { name: "unread", change: { op: "unread", ids: ["a"], counts }, want: ["b", "a"] },
    { name: "read-all", change: { op: "read-all", counts }, want: ["br", "ar"] },
    { name: "seen", change: { op: "seen", ids: ["a", "b"], counts }, want: ["bs", "ars"] },
    { name: "archive", change: { op: "archive", ids: ["a"], counts }, want: ["b"] },
    { name: "delete", change: { op: "delete", ids: ["b", "x"], counts }, want: ["ar"] },
    { name: "unarchive: the hook reloads", change: { op: "unarchive", ids: ["z"], counts }, want: ["b", "ar"] },
  ];
  for (const c of cases) assert.deepEqual(ids(applyChange(items, c.change)), c.want, c.name);
  assert.equal(items[1].readAt, "2026-12-02T05:00:00Z", "items are not changed in place");
  assert.equal(applyChange(items, { op: "read", ids: ["a"], counts })[1].readAt, "2026-12-02T05:00:00Z", "a read keeps its time");
});
