// The reconnect policy alone: every close code of the contract.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, closeAction, CloseCode } from "../herald.js";

const fresh = { invalidBefore: false, quickRetries: 0, maxQuickRetries: 3, reconnectAfterMs: null };

test("closeAction follows the contract's table", () => {
  const cases = [
    ["4000 logout: stop", 4000, fresh, { action: "stop", reason: "disconnected" }],
    ["4001 expired: at once", 4001, fresh, { action: "now" }],
    ["4001 a fourth time in a row: back off", 4001, { ...fresh, quickRetries: 3 }, { action: "backoff" }],
    ["4002 first: once more at once", 4002, fresh, { action: "now" }],
    ["4002 again: stop", 4002, { ...fresh, invalidBefore: true }, { action: "stop", reason: "token_invalid" }],
    ["4003 reused: at once", 4003, fresh, { action: "now" }],
    ["4003 a fourth time in a row: back off", 4003, { ...fresh, quickRetries: 3 }, { action: "backoff" }],
    ["4008 too many: stop", 4008, fresh, { action: "stop", reason: "too_many_connections" }],
    ["4009 slow: backoff", 4009, fresh, { action: "backoff" }],
    ["4029 rate limited: backoff", 4029, fresh, { action: "backoff" }],
    ["1013 try again later: backoff", 1013, fresh, { action: "backoff" }],
    ["1012 after the hint: after_ms", 1012, { ...fresh, reconnectAfterMs: 1234 }, { action: "after", delayMs: 1234 }],
    ["1012 after a zero hint: now", 1012, { ...fresh, reconnectAfterMs: 0 }, { action: "after", delayMs: 0 }],
    ["1012 without the hint: backoff", 1012, fresh, { action: "backoff" }],
    ["1006 lost: backoff", 1006, fresh, { action: "backoff" }],
    ["1001 idle timeout: backoff", 1001, fresh, { action: "backoff" }],
    ["1009 too big: backoff", 1009, fresh, { action: "backoff" }],
  ];
  for (const [name, code, ctx, want] of cases) {
    assert.deepEqual(closeAction(code, ctx), want, name);
  }
  assert.equal(CloseCode.TOKEN_REUSED, 4003);
});

test("backoffDelay is full jitter under a doubling cap", () => {
  for (const [attempt, cap] of [[0, 500], [1, 1000], [3, 4000], [6, 30000], [60, 30000]]) {
    assert.equal(backoffDelay(attempt, 500, 30000, () => 0), 0);
    assert.equal(backoffDelay(attempt, 500, 30000, () => 0.999999), cap - 1, `attempt ${attempt}`);
    const d = backoffDelay(attempt, 500, 30000);
    assert.ok(d >= 0 && d < cap, `attempt ${attempt}: ${d} not in [0, ${cap})`);
  }
});
