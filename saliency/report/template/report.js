"use strict";
// The report's cards: data from the JSON block, drawn one page at a time. The view (page,
// search, filters, sort) lives in the URL fragment, so a link shows what its sender saw.
(function () {
  const cards = JSON.parse(document.getElementById("data").textContent);
  const PAGE = 48;
  const $ = (id) => document.getElementById(id);
  const list = $("cards"), summary = $("summary");
  const controls = { q: $("q"), class: $("class"), method: $("method"), status: $("status"), sort: $("sort") };
  const view = { q: "", class: "", method: "", status: "", sort: "name", page: 1 };
  let shown = [];

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) if (child != null) node.append(child);
    return node;
  }
  function percent(p) { return p == null ? "" : (100 * p).toFixed(1) + "%"; }
  // what a map explains, for alt text: a class, or (no class: target -1) what the row names
  function explains(p) { return p.target != null && p.target < 0 ? `(${p.class})` : `for class ${p.class || "?"}`; }

  // choices of the filters, from the data
  const classes = [...new Set(cards.map((c) => c.class).filter(Boolean))].sort();
  const methods = [...new Set(cards.flatMap((c) => c.pictures.map((p) => p.method)))].sort();
  for (const name of classes) controls.class.append(el("option", { value: name, textContent: name }));
  for (const name of methods) controls.method.append(el("option", { value: name, textContent: name }));

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    for (const key of Object.keys(view)) {
      const value = params.get(key);
      if (key === "page") view.page = Math.max(1, parseInt(value || "1", 10) || 1);
      else view[key] = value == null ? (key === "sort" ? "name" : "") : value;
    }
    for (const [key, control] of Object.entries(controls)) control.value = view[key];
    if (controls.sort.value !== view.sort) { view.sort = "name"; controls.sort.value = "name"; }
  }
  function writeHash() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(view)) {
      if (value && !(key === "sort" && value === "name") && !(key === "page" && value === 1)) params.set(key, value);
    }
    const hash = params.toString();
    if (location.hash.slice(1) !== hash) history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  function select() {
    const q = view.q.trim().toLowerCase();
    shown = cards.filter((c) =>
      (!q || c.image.toLowerCase().includes(q)) &&
      (!view.class || c.class === view.class) &&
      (!view.status || c.status === view.status) &&
      (!view.method || c.pictures.some((p) => p.method === view.method)));
    if (view.sort === "p-desc") shown.sort((a, b) => (b.p ?? -1) - (a.p ?? -1) || a.id - b.id);
    else if (view.sort === "p-asc") shown.sort((a, b) => (a.p ?? 2) - (b.p ?? 2) || a.id - b.id);
  }

  function thumb(image, alt, label, open) {
    const img = el("img", { src: image.thumb, alt: alt, width: image.w, height: image.h, loading: "lazy", decoding: "async" });
    const button = el("button", { type: "button", className: "pic", title: label }, img, el("span", { textContent: label }));
    button.setAttribute("aria-label", "Open full size: " + alt);
    button.addEventListener("click", open);
    return button;
  }

  // a row's keys as a person reads them: "23% of pixels", not "pixel_share 0.23"
  const WORDED = {
    pixel_share: (v) => `${percent(v)} of pixels`,
    region_probability: (v) => `${percent(v)} mean probability over the region`,
    box_share: (v) => `${percent(v)} inside its box`,
    score: (v) => `score ${percent(v)}`,
    similarity: (v) => `similarity ${number(v)}`,
    steps: (v) => `${v} steps`,
    masks: (v) => `${v} masks`,
    baseline: (v) => `${v} baseline`,
    smooth: (v) => `SmoothGrad ×${v}`,
    noise: (v) => `noise ${number(v)}`,
    found: (v) => (Array.isArray(v) && v.length > 1 ? `${v.length} found` : ""),
    label: () => "",  // the picture's own name says it
    box: () => "",  // drawn on the picture
    note: (v) => String(v),
  };
  function number(v) {
    return typeof v === "number" && !Number.isInteger(v) ? String(Number(v.toPrecision(3))) : String(v);
  }
  function caption(options) {
    return Object.entries(options).map(([k, v]) => {
      const worded = WORDED[k];
      if (worded) return worded(v);
      const shown = Array.isArray(v) ? v.join(", ") : number(v);
      return `${k.replace(/_/g, " ")} ${shown}`;
    }).filter(Boolean).join(", ");
  }

  function card(c) {
    const item = el("li", { className: "card" + (c.status === "ok" ? "" : " error") });
    item.dataset.id = c.id;
    item.append(el("h3", { textContent: c.name, title: c.image }));
    const parts = [c.image];
    if (c.model) parts.push(c.model);
    item.append(el("p", { className: "meta", textContent: parts.join(" · ") }));
    if (c.status !== "ok") item.append(el("p", { className: "reason", textContent: "Failed: " + (c.error || "unknown reason") }));
    (c.nothing_found || []).forEach((n) => item.append(el("p", { className: "note", textContent: n })));
    const pictures = c.pictures.filter((p) => !view.method || p.method === view.method);
    const row = el("div", { className: "pics" });
    if (c.photo) row.append(thumb(c.photo, `${c.name}: the photo`, "photo", () => openViewer(c, -1)));
    pictures.forEach((p) => {
      if (!p.image) return;
      const target = p.class ? `${p.class}${p.p == null ? "" : " " + percent(p.p)}` : "";
      const options = caption(p.options || {});
      const label = [p.method, target, options].filter(Boolean).join(" · ");
      row.append(thumb(p.image, `${c.name}: ${p.method} map ${explains(p)}`, label,
        () => openViewer(c, c.pictures.indexOf(p))));
    });
    if (row.childElementCount) item.append(row);
    if (c.top5.length) {
      const bars = el("ol", { className: "top5" });
      bars.setAttribute("aria-label", "Top-5 classes of " + c.name);
      for (const [name, p] of c.top5) {
        const fill = el("i");
        fill.style.width = Math.max(0, Math.min(100, 100 * p)) + "%";
        const bar = el("span", { className: "bar" }, fill);
        bar.setAttribute("aria-hidden", "true");
        bars.append(el("li", {}, el("span", { textContent: name }), bar, el("span", { className: "v", textContent: percent(p) })));
      }
      item.append(bars);
    }
    return item;
  }

  function pager(nav, pages) {
    nav.replaceChildren();
    if (pages <= 1) return;
    const go = (page, text, label) => {
      const button = el("button", { type: "button", textContent: text, disabled: page < 1 || page > pages });
      button.setAttribute("aria-label", label);
      if (page === view.page && text === String(page)) button.setAttribute("aria-current", "page");
      button.addEventListener("click", () => { view.page = page; render(); list.firstElementChild?.querySelector("button, h3")?.focus?.(); });
      nav.append(button);
    };
    go(view.page - 1, "‹ previous", "Previous page");
    const near = new Set([1, pages, view.page - 2, view.page - 1, view.page, view.page + 1, view.page + 2]);
    let last = 0;
    for (const page of [...near].filter((p) => p >= 1 && p <= pages).sort((a, b) => a - b)) {
      if (page > last + 1) nav.append(el("span", { textContent: "…" }));
      go(page, String(page), "Page " + page);
      last = page;
    }
    go(view.page + 1, "next ›", "Next page");
  }

  function render() {
    select();
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    view.page = Math.min(view.page, pages);
    const start = (view.page - 1) * PAGE;
    const fragment = document.createDocumentFragment();
    for (const c of shown.slice(start, start + PAGE)) fragment.append(card(c));
    list.replaceChildren(fragment);
    const failed = shown.filter((c) => c.status !== "ok").length;
    summary.hidden = cards.length === 0;
    summary.textContent = `${shown.length} of ${cards.length} images, ${failed} failed` +
      (pages > 1 ? `; page ${view.page} of ${pages}` : "");
    for (const nav of document.querySelectorAll(".pages")) pager(nav, pages);
    writeHash();
  }

  for (const [key, control] of Object.entries(controls)) {
    control.addEventListener(control.tagName === "INPUT" ? "input" : "change", () => {
      view[key] = control.value;
      view.page = 1;
      render();
    });
  }
  window.addEventListener("hashchange", () => { readHash(); render(); });

  // the full-size viewer: photo under the picture, a slider between them
  const viewer = $("viewer"), under = $("under"), over = $("over"), slider = $("slider");
  let current = null, index = 0;
  function showPicture() {
    const c = current;
    const items = c.pictures.filter((p) => p.image);
    const picture = index >= 0 ? items[index] : null;
    const photo = c.photo && c.photo.full ? c.photo.full : null;
    $("viewer-title").textContent = picture ? `${c.name}: ${picture.method}, ${picture.class || ""} ${percent(picture.p)}` : `${c.name}: photo`;
    under.src = photo || (picture ? picture.image.full : "");
    under.alt = photo ? `${c.name}: the photo` : `${c.name}: ${picture ? picture.method : ""} map`;
    over.hidden = !picture || !photo;
    $("slider-label").hidden = over.hidden;
    if (!over.hidden) {
      over.src = picture.image.full;
      over.alt = `${c.name}: ${picture.method} map ${explains(picture)}`;
      slide();
    }
    $("prev").disabled = index <= (c.photo ? -1 : 0);
    $("next").disabled = index >= items.length - 1;
  }
  function slide() { over.style.clipPath = `inset(0 ${100 - slider.value}% 0 0)`; }
  function openViewer(c, i) {
    current = c;
    const items = c.pictures.filter((p) => p.image);
    index = i < 0 ? -1 : items.indexOf(c.pictures[i]);
    showPicture();
    if (!viewer.open) viewer.showModal();
  }
  function step(delta) {
    const items = current.pictures.filter((p) => p.image);
    const next = index + delta;
    if (next < (current.photo ? -1 : 0) || next >= items.length) return;
    index = next;
    showPicture();
  }
  slider.addEventListener("input", slide);
  $("close").addEventListener("click", () => viewer.close());
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  viewer.addEventListener("keydown", (event) => {
    if (event.target === slider) return;
    if (event.key === "ArrowLeft") { step(-1); event.preventDefault(); }
    if (event.key === "ArrowRight") { step(1); event.preventDefault(); }
  });
  viewer.addEventListener("click", (event) => { if (event.target === viewer) viewer.close(); });

  readHash();
  render();
  document.body.dataset.ready = "1";  // drawn: for scripts and tests that wait on the page
})();
