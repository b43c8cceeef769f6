// Tables that become cards on a phone (app.css .cards-on-phone): each cell carries its column's
// name, shown before the value when the table is laid out as label/value lines.
import { $$ } from "./util.js";

export function labelCells(box, head) {
  for (const tr of $$("tbody tr", box)) [...tr.children].forEach((td, i) => { if (head[i]) td.dataset.label = head[i]; });
}
