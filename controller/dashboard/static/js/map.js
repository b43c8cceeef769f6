// A pole map with Leaflet and no tile server: the only base layer is a street outline drawn
// from the poles themselves (each pole joined to its nearest neighbours), so the map works
// offline and loads nothing from the internet. Markers are focusable (Tab, Enter opens a pole).

const R = 6371000;
function metres(a, b) {
  const x = ((b.lon - a.lon) * Math.PI / 180) * Math.cos(((a.lat + b.lat) / 2) * Math.PI / 180);
  const y = ((b.lat - a.lat) * Math.PI / 180);
  return Math.hypot(x, y) * R;
}

/** Segments between each pole and its nearest neighbours (within 2.2x the nearest distance). */
export function streetOutline(poles, maxM = 120) {
  const seen = new Set();
  const segs = [];
  // grid buckets of ~maxM keep this near-linear for thousands of poles
  const cell = maxM / 111000;
  const buckets = new Map();
  const key = (la, lo) => `${Math.floor(la / cell)}:${Math.floor(lo / cell)}`;
  for (const p of poles) {
    const k = key(p.lat, p.lon);
    if (!buckets.has(k)) buckets.set(k, []);
    buckets.get(k).push(p);
  }
  for (const p of poles) {
    const bi = Math.floor(p.lat / cell), bj = Math.floor(p.lon / cell);
    const near = [];
    for (let i = -1; i <= 1; i++) for (let j = -1; j <= 1; j++) {
      for (const q of buckets.get(`${bi + i}:${bj + j}`) || []) {
        if (q !== p) near.push([metres(p, q), q]);
      }
    }
    near.sort((a, b) => a[0] - b[0]);
    if (!near.length || near[0][0] > maxM) continue;
    const limit = near[0][0] * 2.2;
    for (const [d, q] of near.slice(0, 3)) {
      if (d > limit || d > maxM) break;
      const id = p.id < q.id ? `${p.id}|${q.id}` : `${q.id}|${p.id}`;
      if (seen.has(id)) continue;
      seen.add(id);
      segs.push([[p.lat, p.lon], [q.lat, q.lon]]);
    }
  }
  return segs;
}

export class PoleMap {
  /**
   * @param {HTMLElement} node
   * @param {{onOpen: (id: string) => void, describe: (pole) => {cls: string, text: string, label: string, style?: string}}} opts
   */
  constructor(node, opts) {
    this.opts = opts;
    // eslint-disable-next-line no-undef
    this.map = L.map(node, { attributionControl: false, zoomSnap: 0.25, keyboard: true, maxZoom: 22 });
    this.map.setView([51.9, 4.48], 15);
    this.street = L.layerGroup().addTo(this.map);
    this.markers = L.layerGroup().addTo(this.map);
    this.byId = new Map();
    this.drawing = null;
    this.rect = null;
  }

  setPoles(poles, { fit = true } = {}) {
    this.street.clearLayers();
    for (const seg of streetOutline(poles)) {
      L.polyline(seg, { color: "#b8c1cc", weight: 10, lineCap: "round", interactive: false }).addTo(this.street);
    }
    // a refresh re-creates the markers: the pole whose marker had the keyboard focus keeps it
    const focused = this.map.getContainer().contains(document.activeElement) ? document.activeElement.dataset.pole : undefined;
    this.markers.clearLayers();
    this.byId.clear();
    for (const p of poles) {
      const m = L.marker([p.lat, p.lon], {
        keyboard: true,
        riseOnHover: true,
        icon: L.divIcon({ className: "", iconSize: [28, 28], iconAnchor: [14, 14], html: '<span class="pole-marker" aria-hidden="true"></span>' }),
      });
      m.on("click", () => this.opts.onOpen(p.id));
      m.addTo(this.markers);
      // a marker is a button: Enter or Space opens it (Leaflet itself only opens popups)
      m.getElement()?.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          this.opts.onOpen(p.id);
        }
      });
      this.byId.set(p.id, { pole: p, marker: m });
      this.update(p);
    }
    if (focused) this.byId.get(focused)?.marker.getElement()?.focus({ preventScroll: true });
    if (fit && poles.length) {
      this.map.fitBounds(L.latLngBounds(poles.map((p) => [p.lat, p.lon])).pad(0.15), { maxZoom: 19 });
    }
  }

  update(pole) {
    const hit = this.byId.get(pole.id);
    if (!hit) return;
    hit.pole = pole;
    const d = this.opts.describe(pole);
    let elm = hit.marker.getElement();
    if (!elm) {
      hit.marker.setIcon(L.divIcon({ className: "", iconSize: [28, 28], iconAnchor: [14, 14], html: '<span class="pole-marker" aria-hidden="true"></span>' }));
      elm = hit.marker.getElement();
    }
    if (!elm) return;
    // change the element in place: a live update must not take the keyboard focus away
    const dot = elm.firstElementChild;
    dot.className = `pole-marker ${d.cls}`;
    dot.textContent = d.text;
    dot.style.cssText = d.style || "";
    elm.setAttribute("role", "button");
    elm.setAttribute("aria-label", d.label);
    elm.removeAttribute("title"); // the tooltip below says it, on hover and on keyboard focus
    elm.dataset.pole = pole.id;
    const tip = document.createElement("span");
    tip.textContent = d.tip || pole.id;
    if (!d.tip) tip.setAttribute("translate", "no"); // a bare pole id is data, not words
    if (hit.marker.getTooltip()) hit.marker.setTooltipContent(tip);
    else hit.marker.bindTooltip(tip, { direction: "top", offset: [0, -14], className: "pole-tip" });
  }

  invalidate() {
    this.map.invalidateSize();
  }

  /** Pointer-draw a rectangle once; resolves with [west, south, east, north], or null when
   * Escape cancels (the keyboard's way to choose an area is the map view, see dashboard.js). */
  drawRectangle() {
    const map = this.map;
    return new Promise((resolve) => {
      let start = null;
      map.dragging.disable();
      map.getContainer().style.cursor = "crosshair";
      const done = (result) => {
        map.off("mousedown", down).off("mousemove", move).off("mouseup", up);
        document.removeEventListener("keydown", esc);
        map.dragging.enable();
        map.getContainer().style.cursor = "";
        resolve(result);
      };
      const down = (e) => {
        start = e.latlng;
        this.clearArea();
        this.rect = L.rectangle(L.latLngBounds(start, start), { color: "#c2410c", weight: 2 }).addTo(map);
      };
      const move = (e) => {
        if (start && this.rect) this.rect.setBounds(L.latLngBounds(start, e.latlng));
      };
      const up = (e) => {
        if (!start) return;
        const b = L.latLngBounds(start, e.latlng);
        this.rect.setBounds(b);
        done([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]);
      };
      const esc = (e) => {
        if (e.key !== "Escape") return;
        this.clearArea();
        done(null);
      };
      map.on("mousedown", down).on("mousemove", move).on("mouseup", up);
      document.addEventListener("keydown", esc);
    });
  }

  showArea(bbox) {
    this.clearArea();
    const [w, s, e, n] = bbox;
    this.rect = L.rectangle([[s, w], [n, e]], { color: "#c2410c", weight: 2 }).addTo(this.map);
  }

  clearArea() {
    if (this.rect) this.rect.remove();
    this.rect = null;
  }

  viewBbox() {
    const b = this.map.getBounds();
    return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
  }
}
