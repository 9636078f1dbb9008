// gptimg.TokenGridOverlay: on Token Inpaint / Token Mask Preview, outline the token cells that the
// node's current mask_mode / threshold / grow widgets select, over the node's image preview.
// The per-cell mask coverage comes from the node's last run (UI output "gptimg_grid"); changing a
// widget redraws at once, without re-running the graph.
import { app } from "../../scripts/app.js";
import { selectedCells } from "./lib/token_cells.js";

const NODE_TYPES = new Set(["GPTImgTokenInpaint", "GPTImgTokenMaskPreview"]);
const WIDGETS = ["mask_mode", "threshold", "grow"];
const FILL = "rgba(255, 64, 160, 0.35)";
const STROKE = "rgba(255, 64, 160, 0.95)";

function widgetValue(node, name, fallback) {
  const w = node.widgets?.find(w => w.name === name);
  return w === undefined ? fallback : w.value;
}

function previewWidget(node) {
  return node.widgets?.find(w => w.name?.startsWith("$$canvas-image-preview"));
}

// Where the front end drew preview image i, in node coordinates (mirrors its renderPreview).
function imageRect(node, i) {
  const img = node.imgs?.[i];
  const preview = previewWidget(node);
  if (!img?.naturalWidth || !preview) return null;
  if (node.imageIndex == null && node.imageRects?.[i]) {
    // several images in a grid: each one is fitted inside its cell
    const [x, y, cw, ch] = node.imageRects[i];
    const s = Math.min(cw / img.width, ch / img.height);
    return [x + (cw - img.width * s) / 2, y + (ch - img.height * s) / 2, img.width * s, img.height * s];
  }
  const sizeText = app.ui?.settings?.getSettingValue?.("Comfy.Node.AllowImageSizeDraw") ? 15 : 0;
  const room = (preview.computedHeight ?? 0) - sizeText;
  const s = Math.min(node.size[0] / img.naturalWidth, room / img.naturalHeight, 1);
  const [w, h] = [img.naturalWidth * s, img.naturalHeight * s];
  return [(node.size[0] - w) / 2, preview.y + (room - h) / 2, w, h];
}

function drawCells(ctx, [x, y, w, h], grid, cells) {
  const [cw, ch] = [w / grid.w, h / grid.h];
  ctx.save();
  ctx.fillStyle = FILL;
  ctx.strokeStyle = STROKE;
  ctx.lineWidth = 1;
  cells.forEach((on, k) => {
    if (!on) return;
    const [cx, cy] = [x + (k % grid.w) * cw, y + Math.floor(k / grid.w) * ch];
    ctx.fillRect(cx, cy, cw, ch);
    ctx.strokeRect(cx + 0.5, cy + 0.5, cw - 1, ch - 1);
  });
  ctx.restore();
}

function drawOverlay(node, ctx) {
  if (node.flags?.collapsed || !node.gptimgGrid?.length || !node.imgs?.length) return;
  const opts = {
    mode: widgetValue(node, "mask_mode", "any"),
    threshold: Number(widgetValue(node, "threshold", 0.5)),
    grow: Number(widgetValue(node, "grow", 0)),
  };
  // What was drawn, per shown image, for tests and for anyone inspecting the node.
  const state = { opts, selected: [], cells: [], rects: [] };
  const shown = node.imageIndex == null ? node.imgs.map((_, i) => i) : [node.imageIndex];
  for (const i of shown) {
    const grid = node.gptimgGrid[Math.min(i, node.gptimgGrid.length - 1)];
    const rect = imageRect(node, i);
    if (!rect || !grid) continue;
    const cells = selectedCells(grid.coverage, grid.h, grid.w, opts);
    drawCells(ctx, rect, grid, cells);
    state.selected.push(cells.filter(Boolean).length);
    state.cells.push(cells);
    state.rects.push(rect);
  }
  node.gptimgOverlay = state;
}

app.registerExtension({
  name: "gptimg.TokenGridOverlay",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_TYPES.has(nodeData.name)) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      this.gptimgGrid = output?.gptimg_grid ?? null;
      this.setDirtyCanvas(true, false);
    };

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = onNodeCreated?.apply(this, arguments);
      for (const w of this.widgets ?? []) {
        if (!WIDGETS.includes(w.name)) continue;
        const callback = w.callback;
        w.callback = (...args) => {
          const r2 = callback?.apply(w, args);
          this.setDirtyCanvas(true, false);
          return r2;
        };
      }
      return r;
    };

    // The front end draws the image preview as a widget, after onDrawForeground; so the cells are
    // drawn by a hook on that widget (created lazily when images arrive), right after the image.
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      const r = onDrawForeground?.apply(this, arguments);
      const preview = previewWidget(this);
      if (preview && !preview.gptimgOverlayHooked) {
        const node = this;
        const drawWidget = preview.drawWidget;
        preview.drawWidget = function (ctx2) {
          const r2 = drawWidget.apply(this, arguments);
          drawOverlay(node, ctx2);
          return r2;
        };
        preview.gptimgOverlayHooked = true;
      }
      return r;
    };
  },
});
