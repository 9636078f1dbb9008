// Page-side, after the run: for each Token Inpaint / Token Mask Preview node, what web/token_grid_overlay.js
// draws for several widget settings (set as a user would, through the widgets), and whether the canvas
// pixels really show it. Ends zoomed in on the first such node and returns its screen rect as "clip".
async () => {
  const app = window.app;
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const frame = async () => { app.canvas.setDirty(true, true); await sleep(150); };
  const SETTINGS = [
    { mask_mode: "any", threshold: 0.5, grow: 0 },
    { mask_mode: "any", threshold: 0.5, grow: 1 },
    { mask_mode: "threshold", threshold: 0.5, grow: 0 },
    { mask_mode: "threshold", threshold: 0.9, grow: 2 },
  ];
  const setWidget = (node, name, value) => {
    const w = node.widgets.find(w => w.name === name);
    w.value = value;
    w.callback?.(value, app.canvas, node);
  };
  const pixelAt = ([gx, gy]) => {
    const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([gx, gy]);
    const r = window.devicePixelRatio || 1;
    return Array.from(app.canvas.canvas.getContext("2d").getImageData(Math.round(cx * r), Math.round(cy * r), 1, 1).data);
  };
  const cellCentre = (node, rect, grid, k) => {
    const [x, y, w, h] = rect;
    return [node.pos[0] + x + ((k % grid.w) + 0.5) * (w / grid.w), node.pos[1] + y + (Math.floor(k / grid.w) + 0.5) * (h / grid.h)];
  };

  // Zoom (up to 2x) so the whole node, title included, fits in the window, centred.
  const focus = node => {
    const r = window.devicePixelRatio || 1;
    const [w, h] = [app.canvas.canvas.width / r, app.canvas.canvas.height / r];
    app.canvas.ds.scale = Math.min(2, (0.9 * w) / (node.size[0] + 20), (0.9 * h) / (node.size[1] + 60));
    app.canvas.centerOnNode(node);
  };

  const nodes = app.graph.nodes.filter(n => ["GPTImgTokenMaskPreview", "GPTImgTokenInpaint"].includes(n.type));
  const report = [];
  for (const node of nodes) {
    focus(node);
    for (let i = 0; i < 50 && !(node.imgs?.[0]?.naturalWidth && node.gptimgOverlay); i++) await frame();
    const entry = { id: node.id, type: node.type, grid: node.gptimgGrid?.[0] ?? null, drawn: [], pixel: null };
    if (!node.gptimgOverlay) { report.push(entry); continue; }
    const original = Object.fromEntries(["mask_mode", "threshold", "grow"].map(n => [n, node.widgets.find(w => w.name === n).value]));
    for (const s of SETTINGS) {
      for (const [name, value] of Object.entries(s)) setWidget(node, name, value);
      await frame();
      const st = node.gptimgOverlay;
      entry.drawn.push({ settings: s, opts: st.opts, cells: st.cells[0], rect: st.rects[0] });
    }
    for (const [name, value] of Object.entries(original)) setWidget(node, name, value);
    await frame();
    // One selected cell's centre, with and without the overlay (the cell fill is rgba(255, 64, 160, 0.35)).
    const st = node.gptimgOverlay;
    const k = st.cells[0].indexOf(true);
    if (k >= 0) {
      const at = cellCentre(node, st.rects[0], entry.grid, k);
      const withOverlay = pixelAt(at);
      const saved = node.gptimgGrid;
      node.gptimgGrid = null;
      await frame();
      const without = pixelAt(at);
      node.gptimgGrid = saved;
      await frame();
      entry.pixel = { cell: k, with: withOverlay, without };
    }
    report.push(entry);
  }
  let clip = null;
  if (nodes.length) {
    const node = nodes[0];
    focus(node);
    await frame();
    await sleep(300);
    const box = app.canvas.canvas.getBoundingClientRect();
    const [x0, y0] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] - 10, node.pos[1] - 40]);
    const [x1, y1] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] + 10, node.pos[1] + node.size[1] + 10]);
    const left = Math.max(0, box.left + x0), top = Math.max(0, box.top + y0);
    clip = { x: left, y: top, width: Math.min(window.innerWidth, box.left + x1) - left, height: Math.min(window.innerHeight, box.top + y1) - top };
  }
  return { nodes: report, clip };
}
