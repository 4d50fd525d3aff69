import { test } from "node:test";
import assert from "node:assert/strict";
import { hexToRgb, snapToPalette } from "../src/palette";

test("transparent pixels become white, painted ones the nearest type colour", () => {
  const pixels = new Uint8ClampedArray([
    0, 0, 0, 0, // unpainted
    30, 160, 50, 255, // near #23a436
    40, 180, 250, 200, // near #2bb5f8
    10, 10, 10, 60, // faint anti-aliased edge: background
  ]);
  const used = snapToPalette(pixels, ["#23a436", "#2bb5f8", "#ff1a77"]);
  assert.deepEqual([...pixels], [255, 255, 255, 255, 0x23, 0xa4, 0x36, 255, 0x2b, 0xb5, 0xf8, 255, 255, 255, 255, 255]);
  assert.deepEqual(used, [true, true, false]);
  assert.deepEqual(hexToRgb("#ff1a77"), [255, 26, 119]);
});
