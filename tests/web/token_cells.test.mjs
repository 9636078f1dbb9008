// Run: node --test tests/web/  (the web/ helpers are pure ES modules; no browser needed)
import assert from "node:assert/strict";
import { test } from "node:test";

import { selectedCells } from "../../web/lib/token_cells.js";

const grid = (rows) => rows.join("").split("").map(c => c === "#");
const show = (cells, w) => Array.from({ length: cells.length / w }, (_, y) =>
  cells.slice(y * w, y * w + w).map(c => (c ? "#" : ".")).join(""));

test("mode any selects every cell with some masked pixel", () => {
  const cov = [0, 0.01, 0, 1, 0, 0];
  assert.deepEqual(selectedCells(cov, 2, 3, { mode: "any" }), [false, true, false, true, false, false]);
});

test("mode threshold compares coverage >= threshold", () => {
  const cov = [0.25, 0.5, 0.75, 1];
  assert.deepEqual(selectedCells(cov, 2, 2, { mode: "threshold", threshold: 0.5 }), [false, true, true, true]);
  assert.deepEqual(selectedCells(cov, 2, 2, { mode: "threshold", threshold: 0.8 }), [false, false, false, true]);
});

test("threshold is compared in float32, like torch", () => {
  // float32(0.3) > 0.3, so a coverage stored as the float64 0.3 is not selected by torch either.
  assert.deepEqual(selectedCells([0.3, Math.fround(0.3)], 1, 2, { mode: "threshold", threshold: 0.3 }), [false, true]);
});

test("grow dilates by whole tokens, clipped at the border (max_pool2d with padding)", () => {
  const cov = grid(["....", "....", "...#", "...."]).map(Number);
  assert.deepEqual(show(selectedCells(cov, 4, 4, { grow: 1 }), 4), ["....", "..##", "..##", "..##"]);
  assert.deepEqual(show(selectedCells(cov, 4, 4, { grow: 2 }), 4), [".###", ".###", ".###", ".###"]);
});

test("grow applies after the threshold, on a non-square grid", () => {
  const cov = [0.1, 0, 0, 0, 0, 0.9];
  assert.deepEqual(show(selectedCells(cov, 2, 3, { mode: "threshold", threshold: 0.5, grow: 1 }), 3), [".##", ".##"]);
});

test("a coverage list of the wrong length selects nothing", () => {
  assert.deepEqual(selectedCells([1, 1, 1], 2, 2), []);
  assert.deepEqual(selectedCells(undefined, 2, 2), []);
});
