// Page-side probe: every text web/sampling_stats.js put on each gptimg node, {id: [text, ...]}. The first
// call hooks each node's gptimgStats property, so no update is missed between polls.
() => {
  const seen = {};
  for (const node of window.app.graph.nodes) {
    if (!node.type?.startsWith("GPTImg")) continue;
    if (!node.__gptimgSeen) {
      const log = (node.__gptimgSeen = []);
      let value = node.gptimgStats ?? null;
      Object.defineProperty(node, "gptimgStats", {
        configurable: true,
        get: () => value,
        set: v => { value = v; if (v?.text) log.push(v.text); },
      });
    }
    if (node.__gptimgSeen.length) seen[node.id] = [...node.__gptimgSeen];
  }
  return seen;
}
