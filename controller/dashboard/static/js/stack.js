// A table from util.table that a phone shows as one block per row (css/portal.css, table.stack):
// each cell carries its column's name, so no table scrolls sideways inside the page.
export function stacked(wrap) {
  const tbl = wrap.querySelector("table");
  tbl.classList.add("stack");
  const names = [...tbl.querySelectorAll("thead th")].map((th) => th.textContent);
  for (const tr of tbl.querySelectorAll("tbody tr")) {
    [...tr.children].forEach((td, i) => td.setAttribute("data-label", names[i] || ""));
  }
  return wrap;
}
