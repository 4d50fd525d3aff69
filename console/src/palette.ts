// Turns painted RGBA pixels into an L4V mask: opaque pixels take the nearest anomaly colour,
// the rest become the white background. Pure: unit-tested.

export function hexToRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Snaps `rgba` in place; returns which palette entries the mask uses. */
export function snapToPalette(rgba: Uint8ClampedArray, palette: string[]): boolean[] {
  const colours = palette.map(hexToRgb);
  const used = palette.map(() => false);
  for (let i = 0; i < rgba.length; i += 4) {
    if (rgba[i + 3] < 128) {
      rgba.set([255, 255, 255, 255], i);
      continue;
    }
    let best = 0;
    let bestDistance = Infinity;
    colours.forEach(([r, g, b], k) => {
      const d = (rgba[i] - r) ** 2 + (rgba[i + 1] - g) ** 2 + (rgba[i + 2] - b) ** 2;
      if (d < bestDistance) [best, bestDistance] = [k, d];
    });
    rgba.set([...colours[best], 255], i);
    used[best] = true;
  }
  return used;
}
