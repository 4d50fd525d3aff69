import { test } from "node:test";
import assert from "node:assert/strict";
import { frame, H, sx, sy, W } from "../src/chart";

test("a curve along 0 or 1 lies inside the frame, not on it", () => {
  const box = frame();
  for (const v of [0, 1]) {
    assert.ok(sx(v) > box.x + 2 && sx(v) < box.x + box.width - 2, `x=${v}`);
    assert.ok(sy(v) > box.y + 2 && sy(v) < box.y + box.height - 2, `y=${v}`);
  }
  assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= W && box.y + box.height <= H);
  assert.ok(sy(1) < sy(0)); // up is 1
});
