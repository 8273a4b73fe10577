// Reading totals objects the same way on every page (fields per API.md).
import { el, money, num, t } from "./common.js";

// The campaign goal as a progress bar: "312 of 500 Love Packages funded".
export function goalBar(goal) {
  const funded = Math.min(goal.funded_units || 0, goal.goal_units || 0);
  const ratio = goal.goal_units ? funded / goal.goal_units : 0;
  const label = t("funded", { n: num(goal.funded_units || 0), goal: num(goal.goal_units), unit: goal.unit_name });
  const bar = el("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-label": label,
    "aria-valuemax": goal.goal_units, "aria-valuenow": goal.funded_units || 0 }, el("div"));
  bar.firstChild.style.width = `${(ratio * 100).toFixed(1)}%`;
  return el("div", { class: "goal" },
    el("div", { class: "row" },
      el("strong", { class: "grow goal-text", text: label })),
    bar);
}

export function stat(key, value, id) {
  return el("div", { class: "stat" }, el("div", { class: "v", id, text: value }), el("div", { class: "k", text: t(key) }));
}

export { money };
