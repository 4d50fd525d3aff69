// The geometry of the evaluation charts (SVG): data in [0, 1] on both axes, drawn inside a frame
// that sits INSET pixels outside the data, so a curve along 0 or 1 (a perfect ROC curve) shows
// beside the frame instead of on it. Pure: unit-tested.

export const W = 240;
export const H = 180;
const PAD = 28; // room for the axis labels
const INSET = 4;

export const sx = (x: number) => PAD + INSET + x * (W - PAD - 2 * INSET - 6);
export const sy = (y: number) => H - PAD - INSET - y * (H - PAD - 2 * INSET - 6);

/** The frame around the data: x, y, width, height. */
export function frame(): { x: number; y: number; width: number; height: number } {
  return { x: sx(0) - INSET, y: sy(1) - INSET, width: sx(1) - sx(0) + 2 * INSET, height: sy(0) - sy(1) + 2 * INSET };
}
