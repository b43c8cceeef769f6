// The privacy statement, made from the sensor register (/opendata/v1/register) at every visit,
// so it can never say something the register contradicts: which kinds of module stand on the
// poles, what each collects, which hold personal data, and what is published ("open data,
// unless"). The register lists every module, published or not (controller/opendata/service.py).
import { t } from "./i18n.js";
import { known, qname } from "./quantities.js";
import { stacked } from "./stack.js";
import { el, table } from "./util.js";

/** How a register entry is published: open, restricted (owner only), closed or personal. */
export function publication(e) {
  if (e.containsPersonalInfoData) return "personal";
  if (e.isOpenData) return "open";
  return e.isPublic ? "restricted" : "closed";
}

const category = (c) => {
  try {
    return t(`cat_${c}`);
  } catch {
    return c; // a module type newer than the catalogue: its registered name
  }
};

/** Register entries grouped by kind of module (type, sensor) and how they are published. */
export function kinds(entries) {
  const out = new Map();
  for (const e of entries) {
    const pub = publication(e);
    const key = `${e.category}|${e.sensorType || ""}|${pub}`;
    if (!out.has(key)) {
      out.set(key, {
        category: e.category, sensor: e.sensorType || "", pub, n: 0,
        owners: new Set(), purposes: new Set(), quantities: new Set(), personal: false,
      });
    }
    const k = out.get(key);
    k.n += 1;
    if (e.owner) k.owners.add(e.owner);
    if (e.observationGoal) k.purposes.add(e.observationGoal);
    for (const q of e.quantities || []) k.quantities.add(q);
    k.personal ||= Boolean(e.containsPersonalInfoData);
  }
  const order = { personal: 0, closed: 1, restricted: 2, open: 3 };
  return [...out.values()].sort((a, b) => order[a.pub] - order[b.pub] || a.category.localeCompare(b.category));
}

/** Names as separate text, so each stays a whole catalogue or table entry. */
const commas = (names) => names.flatMap((n, i) => (i ? [", ", n] : [n]));

function kindName(k) {
  return k.sensor && k.sensor !== k.category ? t("module_kind", { category: category(k.category), sensor: k.sensor }) : category(k.category);
}

function listOf(ks) {
  return ks.map((k) => `${kindName(k)}: ${k.n === 1 ? t("count_module") : t("count_modules", { n: k.n })}`).join("; ");
}

/** Fill `box` with the statement for register `entries`; `meta` is /opendata/v1. */
export function renderPrivacy(box, entries, meta) {
  const ks = kinds(entries);
  const poles = new Set(entries.map((e) => e.pole)).size;
  const of = (pub) => ks.filter((k) => k.pub === pub);
  const personal = of("personal");
  const points = [
    personal.length ? t("privacy_personal", { list: listOf(personal) }) : t("privacy_personal_none"),
    of("closed").length ? t("privacy_closed", { list: listOf(of("closed")) }) : null,
    of("restricted").length ? t("privacy_restricted", { list: listOf(of("restricted")) }) : null,
    of("open").length ? t("privacy_open", { list: listOf(of("open")) }) : null,
    t("privacy_numbers", { minutes: Math.round(meta.motionIntervalSeconds / 60) }),
  ].filter(Boolean);
  const links = [
    t("privacy_register_links"), " ",
    el("a", { href: meta.links.register }, t("link_register")), ", ",
    el("a", { href: "/opendata/v1/register.csv" }, t("link_register_csv")), ".",
  ];
  box.replaceChildren(
    el("p", {}, t("privacy_intro", { modules: entries.length, poles })),
    el("ul", { class: "privacy-points" }, points.map((p) => el("li", {}, p))),
    stacked(table(
      [t("privacy_th_module"), t("privacy_th_count"), t("privacy_th_owner"), t("privacy_th_purpose"),
        t("privacy_th_personal"), t("privacy_th_published"), t("privacy_th_measures")],
      ks.map((k) => el("tr", { class: `pub-${k.pub}` },
        el("td", {}, kindName(k)),
        el("td", { class: "num" }, String(k.n)),
        el("td", { translate: "no" }, [...k.owners].join(", ")),
        el("td", { translate: "no" }, [...k.purposes].join("; ")),
        el("td", {}, k.personal ? t("yes") : t("no")),
        el("td", {}, t(`published_${k.pub}`)),
        el("td", {}, k.quantities.size ? commas([...k.quantities].sort((a, b) => known().indexOf(a) - known().indexOf(b)).map(qname))
          : t("measures_none")),
      )),
      t("privacy_table_caption"),
    )),
    el("p", {}, links),
  );
}
