//! `kinspect translate VA`: one virtual address through a page table,
//! the way the hart's MMU would walk it; `--explain` shows every level.
//!
//! Exit code 4 (`crate::error::exit::NO_TRANSLATION`) when the hart would
//! take a page fault; the reason names the level and the entry.

use std::io::Write;

use kinspect_sv39::pte::flag_names;
use kinspect_sv39::{translate, PhysAddr, PteKind, SatpMode, StepOutcome, Translation};
use serde::Serialize;

use super::{parse_va, read_kernel, require_sv39, resolve_root, Ctx, Root};
use super::{Run, Select};
use crate::error::{Error, Result};
use crate::model::{ModelError, Owner, PhysCache, PhysMap};

/// Translate one virtual address through a page table.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
VA may be hex (0x...), decimal, or a symbol from the ELF (`kernelvec`,
`etext+0x10`). Exit code 4 when the address does not translate.

  kinspect translate 0x3ffffff000              TRAMPOLINE
  kinspect translate --hart 1 kernelvec --explain

--explain shows VPN[2], VPN[1], VPN[0], the PTE read at each level with
its flags, and where and why the walk stopped.")]
pub struct Args {
    /// The virtual address.
    pub va: String,
    #[command(flatten)]
    pub select: Select,
    /// Show the walk level by level.
    #[arg(long)]
    pub explain: bool,
}

impl Run for Args {
    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx, &self.select, &self.va, self.explain)
    }
}


/// `--json` output of `translate`.
#[derive(Debug, Serialize)]
pub struct TranslateJson {
    #[serde(flatten)]
    pub root: Root,
    pub va: kinspect_sv39::VirtAddr,
    /// The physical address, null when the address does not translate.
    pub pa: Option<PhysAddr>,
    /// The walk: steps (level, table, index, pte_addr, pte, kind,
    /// problems) and outcome (mapped or fault with level and reason).
    pub translation: Option<Translation>,
    /// What the physical page is, from the kernel model (needs the ELF
    /// with debug info): kernel text/data, kernel stack, trapframe,
    /// page-table page, user page, free page.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner: Vec<Owner>,
}

/// The owners of `pa` from the kernel model; empty when there is no ELF
/// with debug info or the kernel's objects cannot be read (translation
/// itself does not need them). The free list is walked only when nothing
/// else claims the page.
fn owner_of(ctx: &mut Ctx<'_>, pa: PhysAddr) -> Result<Vec<Owner>> {
    let Some(debug) = ctx.symbols else {
        return Ok(Vec::new());
    };
    let ram = ctx.ram;
    let profile = ctx.profile.clone();
    let mut phys = PhysCache::new(ctx.target()?);
    let Ok((kernel, state)) = read_kernel(debug, &profile, &mut phys, ram) else {
        return Ok(Vec::new());
    };
    let mut map = match PhysMap::build_with(&kernel, &mut phys, &state, ram, false) {
        Ok(m) => m,
        Err(ModelError::Target(t)) => return Err(Error::from(t)),
        Err(_) => return Ok(Vec::new()),
    };
    let mut owners = map.owners(pa);
    if owners == [Owner::Allocated] {
        match map.add_free_list(&kernel, &mut phys, ram) {
            Ok(()) => owners = map.owners(pa),
            Err(ModelError::Target(t)) => return Err(Error::from(t)),
            Err(_) => {}
        }
    }
    Ok(owners)
}

fn explain(ctx: &mut Ctx<'_>, root: &Root, t: &Translation) -> Result<()> {
    let w = &mut ctx.out;
    writeln!(w, "translate {:#018x} through {}", t.va, root.describe())?;
    writeln!(
        w,
        "  VPN[2] = {}  VPN[1] = {}  VPN[0] = {}  offset = {:#05x}",
        t.va.vpn(2),
        t.va.vpn(1),
        t.va.vpn(0),
        t.va.page_offset()
    )?;
    for s in &t.steps {
        let head = format!(
            "level {}: table {:#018x} [{}] at {:#018x}",
            s.level, s.table, s.index, s.pte_addr
        );
        let Some(pte) = s.pte else {
            writeln!(w, "{head}: not read")?;
            continue;
        };
        let what = match s.kind {
            Some(PteKind::Pointer) if s.level > 0 => format!(
                "pointer to the level-{} table {:#018x}",
                s.level - 1,
                pte.pa()
            ),
            Some(PteKind::Pointer) => "pointer, but there is no level below".into(),
            Some(PteKind::Leaf) => format!(
                "leaf: {} page at {:#018x}",
                kinspect_sv39::page_size_name(kinspect_sv39::page_size(s.level)),
                pte.pa()
            ),
            _ => "invalid".into(),
        };
        writeln!(
            w,
            "{head}  pte {:#018x}  {}  {what}",
            pte.0,
            flag_names(pte)
        )?;
        for p in &s.problems {
            writeln!(w, "         ! {p}")?;
        }
    }
    match &t.outcome {
        StepOutcome::Mapped { pa, .. } => writeln!(w, "=> {:#018x} -> {pa:#018x}", t.va)?,
        StepOutcome::Fault { level, reason } => writeln!(
            w,
            "=> page fault: the walk stops at level {level}: {reason}"
        )?,
    }
    Ok(())
}

pub fn run(ctx: &mut Ctx<'_>, select: &Select, va_arg: &str, want_explain: bool) -> Result<()> {
    let va = parse_va(ctx, va_arg)?;
    let root = resolve_root(ctx, select)?;
    if root.mode == SatpMode::Bare {
        if ctx.json {
            return ctx.json(&TranslateJson {
                root,
                va,
                // Bare: the virtual address is the physical one.
                pa: Some(PhysAddr(va.0)),
                translation: None,
                owner: Vec::new(),
            });
        }
        writeln!(
            ctx.out,
            "{va:#018x} -> {va:#018x}  (satp mode Bare: no translation)"
        )?;
        return Ok(());
    }
    require_sv39(&root)?;
    let ram = ctx.ram;
    let t = translate(ctx.target()?, root.root, va, ram)?;
    let fault = match &t.outcome {
        StepOutcome::Fault { level, reason } => Some(Error::NoTranslation(format!(
            "{va:#x} does not translate (level {level}): {reason}"
        ))),
        StepOutcome::Mapped { .. } => None,
    };
    let owner = match t.pa() {
        Some(pa) => owner_of(ctx, pa)?,
        None => Vec::new(),
    };
    let page_line = (!owner.is_empty()).then(|| {
        let names: Vec<String> = owner.iter().map(|o| o.to_string()).collect();
        format!("   page: {}", names.join("; "))
    });
    if ctx.json {
        ctx.json(&TranslateJson {
            root,
            va,
            pa: t.pa(),
            translation: Some(t),
            owner,
        })?;
    } else if want_explain {
        explain(ctx, &root, &t)?;
        if let Some(l) = &page_line {
            writeln!(ctx.out, "{l}")?;
        }
    } else if let StepOutcome::Mapped {
        pa, page_size, pte, ..
    } = &t.outcome
    {
        let sym = crate::symbolize::name(ctx.symbols, va.0)
            .map(|s| format!(", {s}"))
            .unwrap_or_default();
        writeln!(
            ctx.out,
            "{va:#018x} -> {pa:#018x}  ({} page, {}{sym})",
            kinspect_sv39::page_size_name(*page_size),
            pte.attr_letters()
        )?;
        if let Some(l) = &page_line {
            writeln!(ctx.out, "{l}")?;
        }
    }
    match fault {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
