//! `xm call FN ARGS...`: call one xend API function by its Xen 2
//! `XendClient` name (`xend_` prefix optional) and print the reply (SXP
//! pretty-printed, text as is).
use crate::error::{Result, XmError};
use crate::{Xm, args};

/// How a function maps onto the HTTP API.
struct Function {
    name: &'static str,
    args: &'static [&'static str],
    post: bool,
    /// Path segments; `{0}`, `{1}` are the arguments.
    path: &'static [&'static str],
    /// Form or query fields; values may be `{N}` or `@{N}` (the contents of
    /// the file named by argument N).
    params: &'static [(&'static str, &'static str)],
}

const fn get(
    name: &'static str,
    args: &'static [&'static str],
    path: &'static [&'static str],
    params: &'static [(&'static str, &'static str)],
) -> Function {
    Function {
        name,
        args,
        post: false,
        path,
        params,
    }
}

const fn post(
    name: &'static str,
    args: &'static [&'static str],
    path: &'static [&'static str],
    params: &'static [(&'static str, &'static str)],
) -> Function {
    Function {
        post: true,
        ..get(name, args, path, params)
    }
}

const FUNCTIONS: &[Function] = &[
    get("node", &[], &["node"], &[]),
    get("node_get_dmesg", &[], &["node", "dmesg"], &[]),
    post(
        "node_clear_dmesg",
        &[],
        &["node", "dmesg"],
        &[("op", "clear")],
    ),
    get("node_log", &[], &["node", "log"], &[]),
    get("domains", &[], &["domain"], &[]),
    get("domain", &["DOM"], &["domain", "{0}"], &[]),
    get(
        "domain_config",
        &["DOM"],
        &["domain", "{0}"],
        &[("op", "config")],
    ),
    post(
        "domain_create",
        &["CONFIGFILE"],
        &["domain"],
        &[("op", "create"), ("config", "@{0}")],
    ),
    post(
        "domain_configure",
        &["DOM", "CONFIGFILE"],
        &["domain", "{0}"],
        &[("op", "configure"), ("config", "@{1}")],
    ),
    post(
        "domain_pause",
        &["DOM"],
        &["domain", "{0}"],
        &[("op", "pause")],
    ),
    post(
        "domain_unpause",
        &["DOM"],
        &["domain", "{0}"],
        &[("op", "unpause")],
    ),
    post(
        "domain_shutdown",
        &["DOM", "REASON"],
        &["domain", "{0}"],
        &[("op", "shutdown"), ("reason", "{1}")],
    ),
    post(
        "domain_destroy",
        &["DOM"],
        &["domain", "{0}"],
        &[("op", "destroy")],
    ),
    post(
        "domain_pincpu",
        &["DOM", "CPU"],
        &["domain", "{0}"],
        &[("op", "pincpu"), ("cpu", "{1}")],
    ),
    post(
        "domain_maxmem_set",
        &["DOM", "MB"],
        &["domain", "{0}"],
        &[("op", "maxmem_set"), ("memory", "{1}")],
    ),
    post(
        "domain_mem_target_set",
        &["DOM", "MB"],
        &["domain", "{0}"],
        &[("op", "mem_target_set"), ("target", "{1}")],
    ),
    get("consoles", &[], &["console"], &[]),
    get("console", &["PORT"], &["console", "{0}"], &[]),
    post(
        "console_disconnect",
        &["PORT"],
        &["console", "{0}"],
        &[("op", "disconnect")],
    ),
];

fn list() -> String {
    let mut out = String::from("Functions (the xend_ prefix is optional):\n");
    for f in FUNCTIONS {
        out.push_str(&format!("  xend_{} {}\n", f.name, f.args.join(" ")));
    }
    out
}

fn fill(template: &str, args: &[String]) -> Result<String> {
    let (file, rest) = match template.strip_prefix('@') {
        Some(r) => (true, r),
        None => (false, template),
    };
    let Some(n) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return Ok(template.to_string());
    };
    let value = &args[n.parse::<usize>().unwrap_or(0)];
    if file {
        std::fs::read_to_string(value).map_err(|source| XmError::ReadConfig {
            path: value.into(),
            source,
        })
    } else {
        Ok(value.clone())
    }
}

/// `xm call FN ARGS...`.
pub async fn call(xm: &Xm, a: args::Call) -> Result<()> {
    if a.function == "help" {
        print!("{}", list());
        return Ok(());
    }
    let name = a.function.strip_prefix("xend_").unwrap_or(&a.function);
    let f = FUNCTIONS.iter().find(|f| f.name == name).ok_or_else(|| {
        XmError::Usage(format!(
            "unknown function '{}'; `xm call help` lists them",
            a.function
        ))
    })?;
    if a.args.len() != f.args.len() {
        return Err(XmError::Usage(format!(
            "xend_{} takes {} argument(s): {}",
            f.name,
            f.args.len(),
            f.args.join(" ")
        )));
    }
    let path = f
        .path
        .iter()
        .map(|p| fill(p, &a.args))
        .collect::<Result<Vec<_>>>()?;
    let params = f
        .params
        .iter()
        .map(|(k, v)| Ok((*k, fill(v, &a.args)?)))
        .collect::<Result<Vec<_>>>()?;
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reply = if f.post {
        xm.sxp.post(&segments, &params).await?
    } else {
        xm.sxp.get(&segments, &params).await?
    };
    match sxp::parse(&reply) {
        Ok(value) if reply.trim_start().starts_with('(') => println!("{}", sxp::pretty(&value)),
        _ => {
            print!("{reply}");
            if !reply.is_empty() && !reply.ends_with('\n') {
                println!();
            }
        }
    }
    Ok(())
}
