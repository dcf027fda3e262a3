//! Expressions: CEL, compiled when a document is saved, evaluated by the engine.
//!
//! Expressions are glue between steps (pick a field, build an input, test a condition), not a
//! place for work, so their cost is bounded by construction rather than by a timer: a source
//! is at most [`MAX_EXPRESSION_CHARS`], it parses within [`MAX_NESTING`] levels, and a
//! comprehension (`all`, `exists`, `map`, `filter`) may not contain another, so evaluating
//! one is linear in its size times the size of the values it reads (which the skills' output
//! limits bound). CEL has no I/O and no loops of its own.
//!
//! Templates are JSON values in which a string that is exactly `${ <expression> }` is
//! replaced by the expression's value (of any JSON type); everything else is literal.

use std::collections::BTreeSet;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, operators};
use cel::{Context, Program};
use serde_json::Value;

/// The longest expression source, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 4096;

/// The deepest an expression's syntax may nest.
pub const MAX_NESTING: u16 = 32;

/// The variables an expression may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `input` and `steps`.
    Run,
    /// `input`, `steps`, and the current `item` and `index` of a `map`.
    MapItem,
}

impl Scope {
    fn allows(self, variable: &str) -> bool {
        matches!(variable, "input" | "steps")
            || (self == Scope::MapItem && matches!(variable, "item" | "index"))
    }

    fn names(self) -> &'static str {
        match self {
            Scope::Run => "input and steps",
            Scope::MapItem => "input, steps, item and index",
        }
    }
}

/// A compiled expression with its source.
#[derive(Debug)]
pub struct Expression {
    source: String,
    program: Program,
    steps: BTreeSet<String>,
}

impl Expression {
    /// Compiles `source` for `scope`, or says what is wrong with it.
    pub fn compile(source: &str, scope: Scope) -> Result<Self, String> {
        if source.chars().count() > MAX_EXPRESSION_CHARS {
            return Err(format!(
                "the expression is longer than {MAX_EXPRESSION_CHARS} characters"
            ));
        }
        if source.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        // The bounded parser first: the default one allows 96 levels.
        let syntax = cel::Env::stdlib()
            .parser()
            .max_recursion_depth(MAX_NESTING)
            .parse(source)
            .map_err(|e| describe_parse_error(&e))?;
        let mut facts = Facts::default();
        walk(&syntax, &mut Vec::new(), 0, &mut facts);
        if facts.deepest_comprehension > 1 {
            return Err(
                "a comprehension (all, exists, exists_one, map, filter) may not contain another"
                    .into(),
            );
        }
        if let Some(unknown) = facts.variables.iter().find(|v| !scope.allows(v)) {
            return Err(format!(
                "unknown variable {unknown:?}: expressions here read {}",
                scope.names()
            ));
        }
        let program = Program::compile(source).map_err(|e| describe_parse_error(&e))?;
        Ok(Self {
            source: source.to_owned(),
            program,
            steps: facts.steps,
        })
    }

    /// The source, as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The step ids the expression reads through `steps.<id>` or `steps['<id>']`.
    pub fn step_references(&self) -> &BTreeSet<String> {
        &self.steps
    }

    /// Evaluates the expression over `variables` (name → JSON value).
    pub fn evaluate(&self, variables: &[(&str, &Value)]) -> Result<Value, String> {
        let mut context = Context::default();
        for (name, value) in variables {
            context.add_variable_from_value(*name, to_cel(value));
        }
        let value = self
            .program
            .execute(&context)
            .map_err(|e| format!("{}: {e}", self.source))?;
        value
            .json()
            .map_err(|e| format!("{}: the value has no JSON form: {e}", self.source))
    }
}

/// A JSON value as CEL sees it: integral numbers are `int` (`uint` only beyond `int`'s
/// range), so `steps.a.output.count + 1` works as a user expects; serde's mapping would make
/// every non-negative JSON integer a `uint`, which CEL refuses to add to an `int`.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            (None, None) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => cel::Value::Map(cel::objects::Map {
            map: Arc::new(
                fields
                    .iter()
                    .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

fn describe_parse_error(errors: &cel::ParseErrors) -> String {
    let first = errors.errors.first();
    match first {
        Some(e) => format!("does not parse: {} (at column {})", e.msg, e.pos.1 + 1),
        None => "does not parse".into(),
    }
}

/// What a walk over an expression's syntax found.
#[derive(Default)]
struct Facts {
    variables: BTreeSet<String>,
    steps: BTreeSet<String>,
    deepest_comprehension: usize,
}

/// Collects free variables, `steps` references and comprehension depth. `bound` holds the
/// comprehension variables in scope, which shadow the run's.
fn walk(node: &IdedExpr, bound: &mut Vec<String>, depth: usize, facts: &mut Facts) {
    let free = |name: &str, bound: &[String]| !bound.iter().any(|b| b == name);
    match &node.expr {
        Expr::Ident(name) => {
            if free(name, bound) {
                facts.variables.insert(name.clone());
            }
        }
        Expr::Select(select) => {
            if let Expr::Ident(root) = &select.operand.expr
                && root == "steps"
                && free(root, bound)
            {
                facts.steps.insert(select.field.clone());
            }
            walk(&select.operand, bound, depth, facts);
        }
        Expr::Call(call) => {
            if call.func_name == operators::INDEX
                && let [operand, key] = call.args.as_slice()
                && let Expr::Ident(root) = &operand.expr
                && root == "steps"
                && free(root, bound)
                && let Expr::Literal(cel::common::ast::LiteralValue::String(id)) = &key.expr
            {
                facts.steps.insert(id.to_string());
            }
            if let Some(target) = &call.target {
                walk(target, bound, depth, facts);
            }
            for arg in &call.args {
                walk(arg, bound, depth, facts);
            }
        }
        Expr::Comprehension(c) => {
            let inner = depth + 1;
            facts.deepest_comprehension = facts.deepest_comprehension.max(inner);
            walk(&c.iter_range, bound, depth, facts);
            walk(&c.accu_init, bound, depth, facts);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                walk(part, bound, inner, facts);
            }
            bound.truncate(before);
        }
        Expr::List(list) => {
            for element in &list.elements {
                walk(element, bound, depth, facts);
            }
        }
        Expr::Map(map) => walk_entries(&map.entries, bound, depth, facts),
        Expr::Struct(structure) => walk_entries(&structure.entries, bound, depth, facts),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn walk_entries(
    entries: &[cel::common::ast::IdedEntryExpr],
    bound: &mut Vec<String>,
    depth: usize,
    facts: &mut Facts,
) {
    for entry in entries {
        match &entry.expr {
            EntryExpr::StructField(field) => walk(&field.value, bound, depth, facts),
            EntryExpr::MapEntry(pair) => {
                walk(&pair.key, bound, depth, facts);
                walk(&pair.value, bound, depth, facts);
            }
        }
    }
}

/// The expression of a template string, when the string is exactly `${ … }`.
pub fn template_expression(text: &str) -> Option<&str> {
    text.strip_prefix("${")?.strip_suffix('}')
}

/// A template with its expressions compiled: literal JSON with expression holes.
#[derive(Debug)]
pub enum Template {
    /// A JSON value without expressions.
    Literal(Value),
    /// An expression's value.
    Expression(Box<Expression>),
    /// An array with holes.
    Array(Vec<Template>),
    /// An object with holes.
    Object(Vec<(String, Template)>),
}

impl Template {
    /// Compiles every expression of `value`; an error names the JSON pointer below `value`.
    pub fn compile(value: &Value, scope: Scope) -> Result<Self, (String, String)> {
        Ok(match value {
            Value::String(text) => match template_expression(text) {
                Some(source) => Template::Expression(Box::new(
                    Expression::compile(source, scope).map_err(|e| (String::new(), e))?,
                )),
                None => Template::Literal(value.clone()),
            },
            Value::Array(items) => {
                let mut compiled = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    compiled.push(
                        Self::compile(item, scope).map_err(|(at, e)| (format!("/{i}{at}"), e))?,
                    );
                }
                if compiled.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Template::Literal(value.clone())
                } else {
                    Template::Array(compiled)
                }
            }
            Value::Object(fields) => {
                let mut compiled = Vec::with_capacity(fields.len());
                for (key, field) in fields {
                    let pointer = key.replace('~', "~0").replace('/', "~1");
                    compiled.push((
                        key.clone(),
                        Self::compile(field, scope)
                            .map_err(|(at, e)| (format!("/{pointer}{at}"), e))?,
                    ));
                }
                if compiled
                    .iter()
                    .all(|(_, t)| matches!(t, Template::Literal(_)))
                {
                    Template::Literal(value.clone())
                } else {
                    Template::Object(compiled)
                }
            }
            other => Template::Literal(other.clone()),
        })
    }

    /// Every step id the template's expressions read.
    pub fn step_references(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        self.collect_references(&mut ids);
        ids
    }

    fn collect_references(&self, ids: &mut BTreeSet<String>) {
        match self {
            Template::Literal(_) => {}
            Template::Expression(e) => ids.extend(e.step_references().iter().cloned()),
            Template::Array(items) => items.iter().for_each(|t| t.collect_references(ids)),
            Template::Object(fields) => fields.iter().for_each(|(_, t)| t.collect_references(ids)),
        }
    }

    /// The template's value over `variables`.
    pub fn render(&self, variables: &[(&str, &Value)]) -> Result<Value, String> {
        Ok(match self {
            Template::Literal(value) => value.clone(),
            Template::Expression(e) => e.evaluate(variables)?,
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(variables))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(variables)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expressions_read_the_run_and_name_the_steps_they_use() {
        let e = Expression::compile(
            "steps.stats.output.words + size(steps['fetch'].output)",
            Scope::Run,
        )
        .unwrap();
        assert_eq!(
            e.step_references().iter().collect::<Vec<_>>(),
            ["fetch", "stats"]
        );
        let steps = json!({"stats": {"output": {"words": 3}}, "fetch": {"output": "abcd"}});
        assert_eq!(e.evaluate(&[("steps", &steps)]).unwrap(), json!(7));

        let filter = Expression::compile("input.items.filter(x, x > 1)", Scope::Run).unwrap();
        let input = json!({"items": [1, 2, 3]});
        assert_eq!(
            filter.evaluate(&[("input", &input)]).unwrap(),
            json!([2, 3])
        );
    }

    #[test]
    fn expressions_that_could_cost_too_much_or_read_unknown_names_are_refused() {
        let nested = "input.a.all(x, input.b.exists(y, x == y))";
        assert!(
            Expression::compile(nested, Scope::Run)
                .unwrap_err()
                .contains("may not contain another")
        );
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert!(Expression::compile(&deep, Scope::Run).is_err());
        let long = format!("input.a + {}", "1 + ".repeat(2000));
        assert!(
            Expression::compile(&long, Scope::Run)
                .unwrap_err()
                .contains("longer")
        );
        assert!(
            Expression::compile("item + 1", Scope::Run)
                .unwrap_err()
                .contains("unknown variable \"item\"")
        );
        assert!(Expression::compile("item + index", Scope::MapItem).is_ok());
        assert!(
            Expression::compile("input.(", Scope::Run)
                .unwrap_err()
                .contains("does not parse")
        );
    }

    #[test]
    fn templates_replace_whole_string_expressions_and_keep_the_rest() {
        let template = Template::compile(
            &json!({"text": "${input.text}", "n": ["${1 + 1}", "${x"], "fixed": "$ {no}"}),
            Scope::Run,
        )
        .unwrap();
        let input = json!({"text": "hi"});
        assert_eq!(
            template.render(&[("input", &input)]).unwrap(),
            json!({"text": "hi", "n": [2, "${x"], "fixed": "$ {no}"})
        );
        let (at, error) = Template::compile(&json!({"a/b": ["${(}"]}), Scope::Run).unwrap_err();
        assert_eq!(at, "/a~1b/0");
        assert!(error.contains("does not parse"));
    }
}
