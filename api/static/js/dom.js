// Small helpers to build DOM nodes from data without innerHTML (so no text from the API is ever parsed as markup).

const SVG_NS = "http://www.w3.org/2000/svg";

/** Return an HTML element: h("a", {href: "#", class: "x", onclick: fn}, "text", child). */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** Return an SVG element, with the same arguments as h(). */
export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Return an inline icon from the sprite, hidden from assistive technology (its text says the same). */
export function icon(name, className = "icon") {
  return s("svg", { class: className, "aria-hidden": "true", focusable: "false" }, s("use", { href: `static/icons.svg#${name}` }));
}

/** Return a visually hidden span: words for screen readers that the layout already shows. */
export function srOnly(text) {
  return h("span", { class: "visually-hidden" }, text);
}

function build(element, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}
