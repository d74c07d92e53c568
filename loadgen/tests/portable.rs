//! The workspace builds on macOS as on Linux: every `libc` item that Apple's targets do
//! not have is used only inside an item, statement or module under
//! `#[cfg(target_os = "linux")]`.
//!
//! No Apple standard library can be installed here to type-check against, so this reads
//! both sides from source: what Apple's targets get from the `libc` crate (its shared
//! `unix` and `bsd` modules and its `apple` ones, read from the copy Cargo built), and
//! every `libc::NAME` in each crate's module tree, walked from its roots with `syn`,
//! carrying whether a Linux-only `cfg` encloses it. The macOS job in CI builds for real.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The `libc` crate's source folder: the version Cargo.lock pins, in Cargo's registry
/// sources (it is there: this test's own build compiled it).
fn libc_src() -> PathBuf {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"libc\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("libc in Cargo.lock");
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let registries = home.join("registry").join("src");
    std::fs::read_dir(&registries)
        .unwrap_or_else(|e| panic!("{}: {e}", registries.display()))
        .map(|e| {
            e.unwrap()
                .path()
                .join(format!("libc-{version}"))
                .join("src")
        })
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("libc-{version} not under {}", registries.display()))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Names the `libc` crate defines for macOS on both of its architectures: every item in
/// the files a macOS build compiles (the shared roots, `unix`, `bsd` and `apple`
/// modules, and the shared parts of the `new` layout) whose `cfg`s hold there, read as
/// tokens so that items inside libc's own macros (`s!`, `f!`, `extern` blocks,
/// `cfg_if!`) count too.
fn apple_names(src: &Path) -> HashSet<String> {
    let mut files = vec![];
    for f in [
        "lib.rs",
        "macros.rs",
        "primitives.rs",
        "types.rs",
        "unix/mod.rs",
        "unix/bsd/mod.rs",
        "new/mod.rs",
        "new/common/mod.rs",
        "new/common/bsd.rs",
    ] {
        files.push(src.join(f));
    }
    for d in ["unix/bsd/apple", "new/apple", "new/common/posix"] {
        if src.join(d).is_dir() {
            rust_files(&src.join(d), &mut files);
        }
    }
    let per_arch = ["aarch64", "x86_64"].map(|arch| {
        let mut names = HashSet::new();
        for f in files.iter().filter(|f| f.is_file()) {
            let text = std::fs::read_to_string(f).unwrap();
            let ts: proc_macro2::TokenStream = text
                .parse()
                .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
            defined(ts, arch, &mut names);
        }
        names
    });
    per_arch[0].intersection(&per_arch[1]).cloned().collect()
}

/// Adds the names of the items in `ts` whose `cfg`s hold on macOS for `arch`.
fn defined(ts: proc_macro2::TokenStream, arch: &str, out: &mut HashSet<String>) {
    use proc_macro2::{Delimiter, TokenTree as T};
    let toks: Vec<T> = ts.into_iter().collect();
    let mut i = 0;
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1), toks.get(i + 2)) {
            (T::Punct(p), Some(T::Group(g)), _)
                if p.as_char() == '#' && g.delimiter() == Delimiter::Bracket =>
            {
                let attr: Vec<T> = g.stream().into_iter().collect();
                let is_cfg = matches!(attr.first(), Some(T::Ident(id)) if id == "cfg");
                let holds = match (is_cfg, attr.get(1)) {
                    (true, Some(T::Group(pred))) => cfg_holds(pred.stream(), arch),
                    _ => true,
                };
                i += 2;
                if !holds {
                    i = item_end(&toks, i);
                }
            }
            (T::Ident(id), Some(T::Punct(bang)), Some(T::Group(body)))
                if id == "cfg_if" && bang.as_char() == '!' =>
            {
                if let Some(chosen) = cfg_if_branch(body.stream(), arch) {
                    defined(chosen, arch, out);
                }
                i += 3;
            }
            (T::Ident(kw), Some(T::Ident(name)), _)
                if matches!(
                    kw.to_string().as_str(),
                    "fn" | "const" | "struct" | "type" | "static" | "union" | "enum"
                ) =>
            {
                out.insert(name.to_string());
                i += 2;
            }
            (T::Ident(kw), _, _) if kw == "use" => {
                // A re-export (`pub use core::ffi::{c_int, ..}`): its names are defined.
                let end = item_end(&toks, i);
                for t in &toks[i + 1..end] {
                    use_idents(t, out);
                }
                i = end;
            }
            (T::Group(g), _, _) => {
                defined(g.stream(), arch, out);
                i += 1;
            }
            _ => i += 1,
        }
    }
}

fn use_idents(t: &proc_macro2::TokenTree, out: &mut HashSet<String>) {
    match t {
        proc_macro2::TokenTree::Ident(id) => {
            out.insert(id.to_string());
        }
        proc_macro2::TokenTree::Group(g) => {
            g.stream().into_iter().for_each(|t| use_idents(&t, out))
        }
        _ => {}
    }
}

/// Where the item starting at `i` ends: after its `;`, or after its body's braces (and
/// a `;` right after them).
fn item_end(toks: &[proc_macro2::TokenTree], mut i: usize) -> usize {
    use proc_macro2::{Delimiter, TokenTree as T};
    while i < toks.len() {
        match &toks[i] {
            T::Punct(p) if p.as_char() == ';' || p.as_char() == ',' => return i + 1,
            T::Group(g) if g.delimiter() == Delimiter::Brace => {
                let semi = matches!(toks.get(i + 1), Some(T::Punct(p)) if p.as_char() == ';');
                return i + 1 + usize::from(semi);
            }
            _ => i += 1,
        }
    }
    i
}

/// The body `cfg_if! { if #[cfg(A)] { .. } else if #[cfg(B)] { .. } else { .. } }`
/// takes on macOS.
fn cfg_if_branch(ts: proc_macro2::TokenStream, arch: &str) -> Option<proc_macro2::TokenStream> {
    use proc_macro2::TokenTree as T;
    let toks: Vec<T> = ts.into_iter().collect();
    let mut i = 0;
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1), toks.get(i + 2), toks.get(i + 3)) {
            (T::Ident(kw), Some(T::Punct(_)), Some(T::Group(attr)), Some(T::Group(body)))
                if kw == "if" =>
            {
                let attr: Vec<T> = attr.stream().into_iter().collect();
                if let Some(T::Group(pred)) = attr.get(1) {
                    if cfg_holds(pred.stream(), arch) {
                        return Some(body.stream());
                    }
                }
                i += 4;
            }
            (T::Ident(kw), Some(T::Group(body)), _, _) if kw == "else" => {
                return Some(body.stream());
            }
            _ => i += 1,
        }
    }
    None
}

/// The comma-separated predicates inside `all(..)` / `any(..)`.
fn predicates(g: &proc_macro2::Group) -> Vec<proc_macro2::TokenStream> {
    let toks: Vec<proc_macro2::TokenTree> = g.stream().into_iter().collect();
    toks.split(|t| matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ','))
        .filter(|p| !p.is_empty())
        .map(|p| p.iter().cloned().collect())
        .collect()
}

/// Whether one `cfg` predicate holds on macOS for `arch` (libc's own build-script cfgs
/// and crate features are off there).
fn cfg_holds(ts: proc_macro2::TokenStream, arch: &str) -> bool {
    use proc_macro2::TokenTree as T;
    let toks: Vec<T> = ts.into_iter().collect();
    match toks.as_slice() {
        [T::Ident(f), T::Group(g)] if f == "all" => {
            predicates(g).into_iter().all(|p| cfg_holds(p, arch))
        }
        [T::Ident(f), T::Group(g)] if f == "any" => {
            predicates(g).into_iter().any(|p| cfg_holds(p, arch))
        }
        [T::Ident(f), T::Group(g)] if f == "not" => !cfg_holds(g.stream(), arch),
        [T::Ident(key), T::Punct(eq), T::Literal(v)] if eq.as_char() == '=' => {
            let v = v.to_string();
            let v = v.trim_matches('"');
            match key.to_string().as_str() {
                "target_os" => v == "macos",
                "target_vendor" => v == "apple",
                "target_family" => v == "unix",
                "target_arch" => v == arch,
                "target_pointer_width" => v == "64",
                "target_endian" => v == "little",
                _ => false,
            }
        }
        [T::Ident(flag)] => flag == "unix",
        _ => false,
    }
}

/// Whether a `cfg` predicate holds only on Linux (or Android, Linux's kernel too).
fn linux_only(meta: &syn::Meta) -> bool {
    let syn::Meta::List(list) = meta else {
        return false;
    };
    let Ok(args) = list.parse_args_with(
        syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
    ) else {
        return false;
    };
    let linux = |m: &syn::Meta| match m {
        syn::Meta::NameValue(nv) if nv.path.is_ident("target_os") => matches!(
            &nv.value,
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. })
                if s.value() == "linux" || s.value() == "android"
        ),
        other => linux_only_nested(other),
    };
    if list.path.is_ident("cfg") || list.path.is_ident("all") {
        args.iter().any(linux)
    } else if list.path.is_ident("any") {
        !args.is_empty() && args.iter().all(linux)
    } else {
        false
    }
}

fn linux_only_nested(m: &syn::Meta) -> bool {
    matches!(m, syn::Meta::List(l) if l.path.is_ident("all") || l.path.is_ident("any"))
        && linux_only(m)
}

fn gated(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && linux_only(&a.meta))
}

/// One use of a `libc` name that Apple's targets lack, outside any Linux-only `cfg`.
#[derive(Debug)]
struct Finding {
    file: PathBuf,
    line: usize,
    name: String,
}

struct Walker<'a> {
    apple: &'a HashSet<String>,
    file: PathBuf,
    depth: usize,
    findings: Vec<Finding>,
    /// File modules declared here (`mod x;`), with whether a Linux-only cfg encloses them.
    children: Vec<(String, bool)>,
}

impl Walker<'_> {
    fn used(&mut self, name: String, line: usize) {
        if self.depth == 0 && !self.apple.contains(&name) {
            self.findings.push(Finding {
                file: self.file.clone(),
                line,
                name,
            });
        }
    }

    fn scoped(&mut self, attrs: &[syn::Attribute], f: impl FnOnce(&mut Self)) {
        let g = gated(attrs);
        self.depth += usize::from(g);
        f(self);
        self.depth -= usize::from(g);
    }

    /// `libc :: NAME` in a macro's tokens, which `syn` leaves unparsed.
    fn tokens(&mut self, ts: proc_macro2::TokenStream) {
        let toks: Vec<proc_macro2::TokenTree> = ts.into_iter().collect();
        for (i, t) in toks.iter().enumerate() {
            match t {
                proc_macro2::TokenTree::Group(g) => self.tokens(g.stream()),
                proc_macro2::TokenTree::Ident(id) if id == "libc" => {
                    if let (
                        Some(proc_macro2::TokenTree::Punct(a)),
                        Some(proc_macro2::TokenTree::Punct(b)),
                        Some(proc_macro2::TokenTree::Ident(name)),
                    ) = (toks.get(i + 1), toks.get(i + 2), toks.get(i + 3))
                    {
                        if a.as_char() == ':' && b.as_char() == ':' {
                            self.used(name.to_string(), name.span().start().line);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match i {
            syn::Item::Const(x) => &x.attrs,
            syn::Item::Enum(x) => &x.attrs,
            syn::Item::Fn(x) => &x.attrs,
            syn::Item::Impl(x) => &x.attrs,
            syn::Item::Macro(x) => &x.attrs,
            syn::Item::Mod(x) => &x.attrs,
            syn::Item::Static(x) => &x.attrs,
            syn::Item::Struct(x) => &x.attrs,
            syn::Item::Trait(x) => &x.attrs,
            syn::Item::Type(x) => &x.attrs,
            syn::Item::Union(x) => &x.attrs,
            syn::Item::Use(x) => &x.attrs,
            _ => &[],
        };
        self.scoped(attrs, |w| {
            if let syn::Item::Mod(m) = i {
                if m.content.is_none() {
                    w.children.push((m.ident.to_string(), w.depth > 0));
                }
            }
            syn::visit::visit_item(w, i)
        });
    }

    fn visit_impl_item_fn(&mut self, i: &'ast syn::ImplItemFn) {
        self.scoped(&i.attrs, |w| syn::visit::visit_impl_item_fn(w, i));
    }

    fn visit_stmt(&mut self, s: &'ast syn::Stmt) {
        let attrs: &[syn::Attribute] = match s {
            syn::Stmt::Local(l) => &l.attrs,
            syn::Stmt::Macro(m) => &m.attrs,
            syn::Stmt::Expr(e, _) => expr_attrs(e),
            syn::Stmt::Item(_) => &[],
        };
        self.scoped(attrs, |w| syn::visit::visit_stmt(w, s));
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<&syn::PathSegment> = p.segments.iter().collect();
        if segs.len() >= 2 && segs[0].ident == "libc" {
            self.used(segs[1].ident.to_string(), segs[1].ident.span().start().line);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_use_path(&mut self, u: &'ast syn::UsePath) {
        if u.ident == "libc" {
            let mut names = vec![];
            use_names(&u.tree, &mut names);
            for n in names {
                let line = n.span().start().line;
                self.used(n.to_string(), line);
            }
        }
        syn::visit::visit_use_path(self, u);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

fn use_names(t: &syn::UseTree, out: &mut Vec<syn::Ident>) {
    match t {
        syn::UseTree::Name(n) => out.push(n.ident.clone()),
        syn::UseTree::Rename(r) => out.push(r.ident.clone()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|i| use_names(i, out)),
        // `libc::x::y` names a module of libc, `libc::*` everything: both too broad to
        // check, and the workspace uses neither.
        syn::UseTree::Path(_) | syn::UseTree::Glob(_) => {}
    }
}

fn expr_attrs(e: &syn::Expr) -> &[syn::Attribute] {
    match e {
        syn::Expr::Block(x) => &x.attrs,
        syn::Expr::Unsafe(x) => &x.attrs,
        syn::Expr::Call(x) => &x.attrs,
        syn::Expr::MethodCall(x) => &x.attrs,
        syn::Expr::Macro(x) => &x.attrs,
        syn::Expr::If(x) => &x.attrs,
        syn::Expr::Match(x) => &x.attrs,
        syn::Expr::Assign(x) => &x.attrs,
        syn::Expr::Return(x) => &x.attrs,
        _ => &[],
    }
}

/// Walks one crate root and every file module under it; returns the findings.
fn walk_crate(root: &Path, apple: &HashSet<String>) -> Vec<Finding> {
    let mut findings = vec![];
    // (file, is it a root or mod.rs, enclosed by a Linux-only cfg)
    let mut queue = vec![(root.to_path_buf(), true, false)];
    while let Some((file, dir_owner, linux)) = queue.pop() {
        let text = std::fs::read_to_string(&file).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut w = Walker {
            apple,
            file: file.clone(),
            depth: usize::from(linux || gated(&ast.attrs)),
            findings: vec![],
            children: vec![],
        };
        w.visit_file(&ast);
        findings.append(&mut w.findings);
        let base = if dir_owner {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for (name, gated_child) in w.children {
            let flat = base.join(format!("{name}.rs"));
            let (path, owner) = if flat.is_file() {
                (flat, false)
            } else {
                (base.join(&name).join("mod.rs"), true)
            };
            assert!(path.is_file(), "module {name} of {}", file.display());
            queue.push((path, owner, linux || w.depth > 0 || gated_child));
        }
    }
    findings
}

/// Every crate root of the workspace: libraries, binaries, tests, benches.
fn crate_roots() -> Vec<PathBuf> {
    let mut roots = vec![];
    for member in ["echo-svc", "loadgen", "benches"] {
        let dir = workspace().join(member);
        for f in ["src/lib.rs", "src/main.rs"] {
            if dir.join(f).is_file() {
                roots.push(dir.join(f));
            }
        }
        for sub in ["tests", "benches", "src/bin"] {
            let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in rd {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "rs") {
                    roots.push(p);
                }
            }
        }
    }
    roots
}

#[test]
fn apple_names_are_read_right_from_the_libc_source() {
    let apple = apple_names(&libc_src());
    for there in [
        "clock_gettime",
        "recvmsg",
        "kill",
        "getrlimit",
        "timespec",
        "SO_TIMESTAMP",
    ] {
        assert!(apple.contains(there), "{there} should be found for Apple");
    }
    for linux in [
        "timerfd_create",
        "clock_nanosleep",
        "prctl",
        "PR_SET_TIMERSLACK",
        "SO_TIMESTAMPNS",
        "SCM_TIMESTAMPNS",
        "epoll_wait",
        "pthread_getcpuclockid",
    ] {
        assert!(
            !apple.contains(linux),
            "{linux} is Linux-only, yet found for Apple"
        );
    }
}

#[test]
fn the_walker_flags_ungated_uses_and_passes_gated_ones() {
    let apple: HashSet<String> = ["kill".to_string()].into();
    let dir = std::env::temp_dir().join(format!("portable-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(
        dir.join("lib.rs"),
        r#"
        #[cfg(target_os = "linux")]
        mod sub;
        mod open;
        fn a() { unsafe { libc::kill(1, 2) }; }
        fn b() { let _ = libc::prctl; }
        #[cfg(all(unix, target_os = "linux"))]
        fn c() { let _ = libc::prctl; }
        fn d() {
            #[cfg(target_os = "linux")]
            let _ = libc::timerfd_create;
            assert!(libc::epoll_wait as usize > 0);
        }
        "#,
    )
    .unwrap();
    std::fs::write(dir.join("sub.rs"), "fn e() { let _ = libc::prctl; }").unwrap();
    std::fs::write(dir.join("open.rs"), "use libc::{kill, SO_TIMESTAMPNS};").unwrap();
    let found = walk_crate(&dir.join("lib.rs"), &apple);
    std::fs::remove_dir_all(&dir).ok();
    let mut names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["SO_TIMESTAMPNS", "epoll_wait", "prctl"],
        "{found:?}"
    );
}

#[test]
fn no_linux_only_libc_item_outside_a_linux_cfg() {
    let apple = apple_names(&libc_src());
    let roots = crate_roots();
    assert!(roots.len() > 10, "{roots:?}");
    let found: Vec<Finding> = roots.iter().flat_map(|r| walk_crate(r, &apple)).collect();
    assert!(
        found.is_empty(),
        "libc items Apple's targets lack, used outside #[cfg(target_os = \"linux\")]:\n{}",
        found
            .iter()
            .map(|f| format!("  {}:{} libc::{}", f.file.display(), f.line, f.name))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
