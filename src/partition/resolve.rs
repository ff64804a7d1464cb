//! Finds a placeholder's field in the schema (`a` or `a.b` through structs), with a
//! "did you mean" for near misses.

use crate::schema::{FieldSpec, FieldType};

/// Resolves `a` or `a.b.c` (through structs) to field indexes and the field's type.
pub(super) fn resolve<'s>(name: &str, schema: &'s [FieldSpec]) -> Result<(Vec<usize>, &'s FieldType), String> {
    let mut components = name.split('.');
    let first = components.next().unwrap_or_default();
    let names: Vec<&str> = schema.iter().map(|f| f.name.as_str()).collect();
    let Some(index) = names.iter().position(|n| *n == first) else {
        return Err(format!("unknown field `{first}` in partition template{}", suggestion(first, &names)));
    };
    let mut path = vec![index];
    let mut current = &schema[index].field_type;
    let mut walked = first.to_string();
    for component in components {
        let FieldType::Struct(children) = current else {
            return Err(format!(
                "`{name}`: `{walked}` is a {current}, not a struct; only struct members can be reached with `.`"
            ));
        };
        let child_names: Vec<&str> = children.iter().map(|(n, _)| n.as_str()).collect();
        let Some(i) = child_names.iter().position(|n| *n == component) else {
            return Err(format!(
                "unknown field `{component}` in struct `{walked}`{}",
                suggestion(component, &child_names)
            ));
        };
        path.push(i);
        current = &children[i].1;
        walked = format!("{walked}.{component}");
    }
    Ok((path, current))
}

/// "; did you mean `x`?" for a near miss ([`crate::suggest`]), else the list of available names.
fn suggestion(wanted: &str, names: &[&str]) -> String {
    match crate::suggest::closest(wanted, names.iter().copied()) {
        Some(name) => format!("; did you mean `{name}`?"),
        None if names.is_empty() => String::new(),
        None => {
            let shown: Vec<String> = names.iter().take(20).map(|n| format!("`{n}`")).collect();
            format!("; fields are {}", shown.join(", "))
        }
    }
}
