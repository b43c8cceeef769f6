// The privacy statement, made at every visit from the sensor register's summary per module type
// (/opendata/v1/register/summary, computed by the server from the register's entries), so it
// can never say something the register contradicts: which kinds of module stand on the poles,
// what each is for, which hold personal data, and what is published ("open data, unless").
// The summary stays small however many modules a city has; the register itself is linked.
import { t } from "./i18n.js";
import { known, qname } from "./quantities.js";
import { stacked } from "./stack.js";
import { el, table } from "./util.js";

const category = (c) => {
  try {
    return t(`cat_${c}`);
  } catch {
    return c; // a module type newer than the catalogue: its registered name
  }
};

/** "air quality (NO2-B43F, SPS30)": the type in words, the sensors as registered. */
const sensors = (k) => k.sensorTypes.filter((s) => s !== k.category);
function kindName(k) {
  return sensors(k).length ? `${category(k.category)} (${sensors(k).join(", ")})` : category(k.category);
}

const count = (n) => (n === 1 ? t("count_module") : t("count_modules", { n }));
const listOf = (ks, n) => ks.map((k) => `${kindName(k)}: ${count(n(k))}`).join("; ");
/** Names as separate text, so each stays a whole catalogue or table entry. */
const commas = (names) => names.flatMap((x, i) => (i ? [", ", x] : [x]));

/** Whether a kind's modules are published as open data, and if not, why not. */
function published(k) {
  if (k.isOpenData === k.modules) return t("yes");
  if (k.isOpenData > 0) return t("count_of", { k: k.isOpenData, n: k.modules });
  if (k.containsPersonalInfoData === k.modules) return t("published_personal");
  return k.isPublic === 0 ? t("published_closed") : t("published_restricted");
}

/** Fill `box` with the statement for the register `summary`; `meta` is /opendata/v1. */
export function renderPrivacy(box, summary, meta) {
  const ks = summary.value;
  const personal = ks.filter((k) => k.containsPersonalInfoData > 0);
  // modules neither open nor personal: their owner keeps them closed or to itself
  const kept = (k) => k.modules - k.isOpenData - k.containsPersonalInfoData;
  const points = [
    personal.length ? t("privacy_personal", { list: listOf(personal, (k) => k.containsPersonalInfoData) })
      : t("privacy_personal_none"),
    ks.some((k) => kept(k) > 0) ? t("privacy_restricted", { list: listOf(ks.filter((k) => kept(k) > 0), kept) }) : null,
    ks.some((k) => k.isOpenData > 0) ? t("privacy_open", { list: listOf(ks.filter((k) => k.isOpenData > 0), (k) => k.isOpenData) }) : null,
    t("privacy_numbers", { minutes: Math.round(meta.motionIntervalSeconds / 60) }),
  ].filter(Boolean);
  const order = (k) => (k.containsPersonalInfoData ? 0 : k.isOpenData === k.modules ? 2 : 1);
  const rows = [...ks].sort((a, b) => order(a) - order(b) || a.category.localeCompare(b.category));
  box.replaceChildren(
    el("p", {}, t("privacy_intro", { modules: summary.modules })),
    el("ul", { class: "privacy-points" }, points.map((p) => el("li", {}, p))),
    stacked(table(
      [t("privacy_th_module"), t("privacy_th_count"), t("privacy_th_owner"), t("privacy_th_purpose"),
        t("privacy_th_personal"), t("privacy_th_published"), t("privacy_th_measures")],
      rows.map((k) => el("tr", { dataset: { category: k.category } },
        el("td", {}, category(k.category), ...(sensors(k).length
          ? [" (", el("span", { translate: "no" }, sensors(k).join(", ")), ")"] : [])),
        el("td", { class: "num" }, String(k.modules)),
        el("td", { translate: "no" }, k.owners.join(", ")),
        el("td", { translate: "no" }, k.observationGoals.join("; ")),
        el("td", {}, k.containsPersonalInfoData ? t("yes_count", { k: k.containsPersonalInfoData, n: k.modules }) : t("no")),
        el("td", {}, published(k)),
        el("td", {}, k.quantities.length
          ? commas([...k.quantities].sort((a, b) => known().indexOf(a) - known().indexOf(b)).map(qname))
          : t("measures_none")),
      )),
      t("privacy_table_caption"),
    )),
    el("p", {}, t("privacy_register_links"), " ",
      el("a", { href: meta.links.register }, t("link_register")), ", ",
      el("a", { href: "/opendata/v1/register.csv" }, t("link_register_csv")), "."),
  );
}
