//! What a set of policies reads of a request: which attributes of `resource` and of `context`. A decision depends
//! on the principal, the action and exactly these values, so a decision once made can be reused for any request
//! that agrees on them — this is what makes the decision cache sound for any policy file, not just ours.
use cedar_policy::PolicySet;
use serde_json::Value;
use std::collections::BTreeSet;

/// The attributes of one request variable that policies read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum AttrReads {
    /// These attributes only, through `var.attr` or `var has attr`.
    #[default]
    None,
    /// These named attributes.
    Some(BTreeSet<String>),
    /// The variable is used otherwise (compared whole, in a scope, tested with `is`/`in`, unparsed policy): a
    /// decision depends on all of it.
    All,
}

impl AttrReads {
    fn add(&mut self, attr: &str) {
        match self {
            AttrReads::All => {}
            AttrReads::Some(s) => {
                s.insert(attr.to_owned());
            }
            AttrReads::None => *self = AttrReads::Some(BTreeSet::from([attr.to_owned()])),
        }
    }

    /// Whether a decision can depend on the variable as a whole (its identity), not only on attributes.
    pub(crate) fn reads_whole(&self) -> bool {
        matches!(self, AttrReads::All)
    }

    /// Whether a decision can depend on `attr`.
    pub(crate) fn reads(&self, attr: &str) -> bool {
        match self {
            AttrReads::None => false,
            AttrReads::Some(s) => s.contains(attr),
            AttrReads::All => true,
        }
    }
}

/// What the policies of one slice read of `resource` and `context`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reads {
    pub resource: AttrReads,
    pub context: AttrReads,
}

impl Reads {
    /// The reads of every policy in `set`. A policy that cannot be rendered as JSON counts as reading everything.
    pub(crate) fn of(set: &PolicySet) -> Reads {
        let mut r = Reads::default();
        for p in set.policies() {
            match p.to_json() {
                Ok(json) => r.policy(&json),
                Err(_) => {
                    r.resource = AttrReads::All;
                    r.context = AttrReads::All;
                }
            }
        }
        r
    }

    /// Adds what `other` reads.
    pub(crate) fn union(&mut self, other: &Reads) {
        for (mine, theirs) in [
            (&mut self.resource, &other.resource),
            (&mut self.context, &other.context),
        ] {
            match theirs {
                AttrReads::None => {}
                AttrReads::All => *mine = AttrReads::All,
                AttrReads::Some(s) => s.iter().for_each(|a| mine.add(a)),
            }
        }
    }

    fn var(&mut self, name: &str) -> Option<&mut AttrReads> {
        match name {
            "resource" => Some(&mut self.resource),
            "context" => Some(&mut self.context),
            _ => None,
        }
    }

    fn policy(&mut self, json: &Value) {
        // A resource scope other than `resource` alone (`== E`, `in E`, `is T`) depends on the whole resource.
        match json.get("resource").and_then(|s| s.get("op")) {
            Some(Value::String(op)) if op == "All" => {}
            _ => self.resource = AttrReads::All,
        }
        match json.get("conditions") {
            Some(c) => self.expr(c),
            None => {
                self.resource = AttrReads::All;
                self.context = AttrReads::All;
            }
        }
    }

    fn expr(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                for op in [".", "has"] {
                    if let Some(inner) = m.get(op) {
                        let var = inner
                            .get("left")
                            .and_then(|l| l.get("Var"))
                            .and_then(Value::as_str);
                        let attr = inner.get("attr").and_then(Value::as_str);
                        if let (Some(var), Some(attr)) = (var, attr) {
                            if let Some(r) = self.var(var) {
                                r.add(attr);
                            }
                            return;
                        }
                    }
                }
                if let Some(var) = m.get("Var").and_then(Value::as_str) {
                    if let Some(r) = self.var(var) {
                        *r = AttrReads::All;
                    }
                    return;
                }
                m.values().for_each(|x| self.expr(x));
            }
            Value::Array(a) => a.iter().for_each(|x| self.expr(x)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn reads(src: &str) -> Reads {
        Reads::of(&PolicySet::from_str(src).unwrap())
    }

    #[test]
    fn attribute_reads_are_named_and_other_uses_read_everything() {
        let r = reads(
            r#"permit (principal, action, resource)
               when { context.purpose == "x" && resource has courier && resource.courier == principal };"#,
        );
        assert!(r.resource.reads("courier") && !r.resource.reads("status"));
        assert!(r.context.reads("purpose") && !r.context.reads("now"));
        let r = reads(r#"permit (principal, action, resource) when { resource == principal };"#);
        assert_eq!(r.resource, AttrReads::All);
        let r = reads(r#"permit (principal, action, resource is Waybill);"#);
        assert_eq!(r.resource, AttrReads::All);
        let r = reads(r#"permit (principal, action, resource) when { context has x };"#);
        assert_eq!(r.resource, AttrReads::None);
        assert!(r.context.reads("x"));
        let r = reads(r#"permit (principal, action, resource) when { context.rec.y == 1 };"#);
        assert!(r.context.reads("rec"));
    }
}
