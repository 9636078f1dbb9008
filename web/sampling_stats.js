// gptimg.SamplingStats: "done/total tokens · x tok/s · ETA" under a gptimg node while it samples, and the
// settings the run uses (cfg, temperature, ...: what a widget at -1, the model's value, stood for),
// from the websocket event "gptimg.sampling_stats" that the sampler and editing nodes send.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EVENT = "gptimg.sampling_stats";

function formatSeconds(s) {
  if (!Number.isFinite(s)) return "?";
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function statsText(d) {
  const rate = `${Number(d.tokens_per_s).toFixed(1)} tok/s`;
  if (d.finished && d.done >= d.total) return `✓ ${d.total} tokens · ${rate}`;
  if (d.finished) return `stopped at ${d.done}/${d.total} tokens`; // interrupted or failed
  return `${d.done}/${d.total} tokens · ${rate} · ETA ${formatSeconds(Number(d.eta_s))}`;
}

function findNode(id) {
  // Top-level nodes only: inside a subgraph the id reads "<parent>:<child>", and the child's local id
  // could name another node of the root graph.
  return /^\d+$/.test(String(id)) ? (app.graph?.getNodeById(Number(id)) ?? null) : null;
}

app.registerExtension({
  name: "gptimg.SamplingStats",
  setup() {
    api.addEventListener(EVENT, ({ detail }) => {
      const node = findNode(detail?.node);
      if (!node) return;
      node.gptimgStats = { ...detail, text: statsText(detail) };
      node.setDirtyCanvas(true, false);
    });
    // A new run starts with a clean slate; the "finished" line of the last run stays until then.
    api.addEventListener("execution_start", () => {
      for (const node of app.graph?.nodes ?? []) {
        if (node.gptimgStats) {
          node.gptimgStats = null;
          node.setDirtyCanvas(true, false);
        }
      }
    });
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData.name?.startsWith("GPTImg")) return;
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      const r = onDrawForeground?.apply(this, arguments);
      if (!this.gptimgStats || this.flags?.collapsed) return r;
      ctx.save();
      ctx.font = "12px sans-serif";
      ctx.textAlign = "left";
      ctx.fillStyle = this.gptimgStats.finished ? "#8c8" : "#ddd";
      ctx.fillText(this.gptimgStats.text, 4, this.size[1] + 16);
      if (this.gptimgStats.settings) {
        // the values this run used: a widget at -1 stands for the model's recommended value
        ctx.fillStyle = "#aaa";
        ctx.fillText(this.gptimgStats.settings, 4, this.size[1] + 32);
      }
      ctx.restore();
      return r;
    };
  },
});
