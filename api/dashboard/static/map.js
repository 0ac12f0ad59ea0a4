// The district map as SVG from the overview GeoJSON: rivers as lines, stations as symbols by kind, coloured by
// state. An equirectangular projection scaled by cos(latitude) is exact enough for a 50 km district and needs no
// map library or tiles.
import { s, clear } from "./dom.js";
import { t } from "./i18n.js";

const WIDTH = 1000;
const PAD = 18;
export const STATES = ["normal", "stale", "blue", "yellow", "orange", "red"];
const KIND_ORDER = { village_water: 0, groundwater: 1, intake: 1, river: 2, rain: 3, reservoir: 4 };

function projector(bbox) {
  const [w, south, e, n] = bbox;
  const k = Math.cos(((south + n) / 2) * Math.PI / 180);
  const spanX = Math.max((e - w) * k, 1e-6);
  const spanY = Math.max(n - south, 1e-6);
  const scale = (WIDTH - 2 * PAD) / spanX;
  const height = Math.round(spanY * scale + 2 * PAD);
  return {
    height,
    xy: ([lon, lat]) => [PAD + (lon - w) * k * scale, PAD + (n - lat) * scale],
  };
}

function symbol(kind, x, y, big) {
  const f = big ? 1.5 : 1;
  switch (kind) {
    case "reservoir": {
      const r = 8 * f;
      return s("path", { d: `M${x},${y - r}L${x + r * 0.95},${y + r * 0.7}L${x - r * 0.95},${y + r * 0.7}Z` });
    }
    case "rain": {
      const r = 5 * f;
      return s("rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r, rx: 1 });
    }
    case "river": {
      const r = 6.5 * f;
      return s("path", { d: `M${x},${y - r}L${x + r},${y}L${x},${y + r}L${x - r},${y}Z` });
    }
    default:
      return s("circle", { cx: x, cy: y, r: big ? 4.5 : 2.4 });
  }
}

function pathOf(line, xy) {
  return line.map((p, i) => {
    const [x, y] = xy(p);
    return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
  }).join("");
}

// Draws the map into an <svg>; onSelect(stationId) on a click. Returns the number of river features drawn.
export function renderMap(svg, geo, { onSelect, selected } = {}) {
  clear(svg);
  const bbox = geo.bbox || [120.25, 36.25, 120.85, 36.65];
  const { height, xy } = projector(bbox);
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
  svg.append(s("rect", { class: "map-bg", x: 0, y: 0, width: WIDTH, height }));

  const rivers = s("g", { class: "rivers" });
  const stations = [];
  for (const f of geo.features) {
    if (f.properties.layer === "river") {
      const lines = f.geometry.type === "LineString" ? [f.geometry.coordinates] : f.geometry.coordinates;
      rivers.append(s("path", { class: "river", d: lines.map((l) => pathOf(l, xy)).join("") },
        s("title", {}, f.properties.name)));
    } else {
      stations.push(f);
    }
  }
  svg.append(rivers);

  // Town names where their villages are: orientation without a base map.
  const towns = new Map();
  for (const f of stations) {
    if (f.properties.kind !== "village_water") continue;
    const [x, y] = xy(f.geometry.coordinates);
    const c = towns.get(f.properties.town) || { x: 0, y: 0, n: 0 };
    towns.set(f.properties.town, { x: c.x + x, y: c.y + y, n: c.n + 1 });
  }
  const labels = s("g", { class: "town-labels" });
  for (const [name, c] of towns) labels.append(s("text", { x: c.x / c.n, y: c.y / c.n }, name));
  svg.append(labels);

  // Alerting stations on top of quiet ones, big symbols on top of village dots.
  stations.sort((a, b) => (STATES.indexOf(a.properties.state) - STATES.indexOf(b.properties.state))
    || ((KIND_ORDER[a.properties.kind] ?? 0) - (KIND_ORDER[b.properties.kind] ?? 0)));
  const layer = s("g", { class: "stations" });
  for (const f of stations) {
    const p = f.properties;
    const [x, y] = xy(f.geometry.coordinates);
    const alerting = !["normal", "stale"].includes(p.state);
    const g = s("g", {
      class: `st st-${p.state} kind-${p.kind}${p.id === selected ? " selected" : ""}`,
      "data-station-id": p.id, "data-state": p.state, tabindex: alerting ? 0 : -1,
    });
    if (alerting && (p.state === "red" || p.state === "orange")) {
      g.append(s("circle", { class: "halo", cx: x, cy: y, r: 13 }));
    }
    g.append(symbol(p.kind, x, y, alerting));
    g.append(s("title", {}, `${p.name} · ${t(`kind.${p.kind}`)} · ${p.town} · ${t(`state.${p.state}`)}`));
    if (onSelect) g.addEventListener("click", () => onSelect(p.id));
    layer.append(g);
  }
  svg.append(layer);
  return geo.features.length - stations.length;
}
