// Token cells a pixel mask selects, from per-cell mask coverage: the same arithmetic as
// gptimg_core.editing.pixel_mask_to_tokens (mode "any" | "threshold", then grow by whole tokens).
// Pure and import-free: ComfyUI loads every .js under web/ as an extension, and this one only exports.

/**
 * @param {number[]} coverage h*w fractions in [0, 1], row-major (the "gptimg_grid" UI output)
 * @param {number} h grid rows
 * @param {number} w grid columns
 * @param {{mode?: string, threshold?: number, grow?: number}} opts the node's widget values
 * @returns {boolean[]} h*w, true = the token is resampled
 */
export function selectedCells(coverage, h, w, { mode = "any", threshold = 0.5, grow = 0 } = {}) {
  if (!Array.isArray(coverage) || coverage.length !== h * w) return [];
  // torch compares the float32 coverage with a float32 threshold: fround keeps the edge cases equal.
  const t = Math.fround(threshold);
  const hit = coverage.map(c => (mode === "threshold" ? c >= t : c > 0));
  const g = Math.max(0, Math.floor(grow) || 0);
  if (g === 0) return hit;
  // Square dilation, as max_pool2d(kernel 2g+1, padding g): a cell is on if any cell within g rows and cols is.
  const out = new Array(h * w).fill(false);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!hit[y * w + x]) continue;
      for (let yy = Math.max(0, y - g); yy <= Math.min(h - 1, y + g); yy++) {
        for (let xx = Math.max(0, x - g); xx <= Math.min(w - 1, x + g); xx++) out[yy * w + xx] = true;
      }
    }
  }
  return out;
}
