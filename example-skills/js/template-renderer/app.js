// examples/template-renderer: renders Mustache-style templates.
//
//   {"template": "Hi {{user.name}}!{{#items}} [{{.}}]{{/items}}", "data": {...}}
//
// Supports variables with dotted paths ({{a.b}}, {{.}} for the current item), HTML-escaped
// by default ({{{raw}}} or {{&raw}} are not), sections ({{#list}}…{{/list}} repeat for
// arrays, enter objects, show for true values), inverted sections ({{^empty}}…{{/empty}})
// and comments ({{! … }}). Missing values render as nothing; `strict: true` makes them an
// invalid-input error instead.

import { skill, SkillError } from 'omniforge-sdk';

const TAG = /\{\{(\{?)([#^/!&]?)\s*([^}]*?)\s*\}?\}\}/g;
const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export const handler = skill((ctx, input) => {
  if (typeof input.template !== 'string') {
    throw SkillError.invalidInput('template must be a string');
  }
  const tree = parse(input.template);
  const options = { escape: input.escape !== false, strict: input.strict === true };
  return { text: render(tree, [input.data ?? {}], options) };
});

/** The template as a tree of text, variables and sections; unbalanced sections are errors. */
function parse(template) {
  const root = { children: [] };
  const stack = [root];
  let last = 0;
  for (const match of template.matchAll(TAG)) {
    const [whole, triple, sigil, name] = match;
    const top = stack[stack.length - 1];
    if (match.index > last) top.children.push(template.slice(last, match.index));
    last = match.index + whole.length;
    if (sigil === '!') continue;
    if (sigil === '#' || sigil === '^') {
      const section = { name, inverted: sigil === '^', children: [] };
      top.children.push(section);
      stack.push(section);
    } else if (sigil === '/') {
      if (stack.length === 1 || top.name !== name) {
        throw SkillError.invalidInput(`{{/${name}}} closes ${stack.length === 1 ? 'nothing' : `{{#${top.name}}}`}`);
      }
      stack.pop();
    } else {
      top.children.push({ variable: name, raw: triple === '{' || sigil === '&' });
    }
  }
  if (stack.length > 1) {
    throw SkillError.invalidInput(`{{#${stack[stack.length - 1].name}}} is never closed`);
  }
  if (last < template.length) root.children.push(template.slice(last));
  return root;
}

function render(node, contexts, options) {
  let out = '';
  for (const child of node.children) {
    if (typeof child === 'string') {
      out += child;
    } else if (child.variable !== undefined) {
      const value = lookup(child.variable, contexts, options);
      const text = value === undefined || value === null ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
      out += options.escape && !child.raw ? text.replace(/[&<>"']/g, (c) => ESCAPES[c]) : text;
    } else {
      const value = lookup(child.name, contexts, { ...options, strict: false });
      const empty = value === undefined || value === null || value === false || (Array.isArray(value) && value.length === 0);
      if (child.inverted) {
        if (empty) out += render(child, contexts, options);
      } else if (!empty) {
        const items = Array.isArray(value) ? value : [value];
        for (const item of items) {
          out += render(child, typeof item === 'object' || Array.isArray(value) ? [...contexts, item] : contexts, options);
        }
      }
    }
  }
  return out;
}

/** `a.b.c` looked up from the innermost context outwards; `.` is the current item. */
function lookup(path, contexts, options) {
  if (path === '.') return contexts[contexts.length - 1];
  const [first, ...rest] = path.split('.');
  for (let i = contexts.length - 1; i >= 0; i--) {
    const context = contexts[i];
    if (context !== null && typeof context === 'object' && first in context) {
      let value = context[first];
      for (const key of rest) value = value === null || value === undefined ? undefined : value[key];
      return value;
    }
  }
  if (options.strict) throw SkillError.invalidInput(`{{${path}}} has no value`);
  return undefined;
}
