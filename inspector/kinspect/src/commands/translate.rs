//! `kinspect translate VA`: one virtual address through a page table,
//! the way the hart's MMU would walk it; `--explain` shows every level.
//!
//! Exit code 4 (`crate::error::exit::NO_TRANSLATION`) when the hart would
//! take a page fault; the reason names the level and the entry.

use kinspect_sv39::{translate, PhysAddr, SatpMode};

use super::{parse_va, require_sv39, resolve_root, Ctx};
use super::{Run, Select};
use crate::error::{Error, Result};
use crate::model::{Kernel, ModelError, Owner, PhysCache, PhysMap};
use crate::views::translate::Translate;

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

/// The owners of `pa` from the kernel model; empty when there is no ELF
/// with debug info or the kernel's objects cannot be read (translation
/// itself does not need them), but a lost connection is an error. The
/// free list is walked only when nothing else claims the page.
fn owner_of(ctx: &mut Ctx<'_>, pa: PhysAddr) -> Result<Vec<Owner>> {
    let Some(debug) = ctx.symbols() else {
        return Ok(Vec::new());
    };
    let ram = ctx.ram;
    let profile = ctx.profile.clone();
    let mut phys = PhysCache::new(ctx.target()?);
    let Ok(kernel) = Kernel::new(debug, profile) else {
        return Ok(Vec::new());
    };
    let state = match kernel.read_state(&mut phys, ram) {
        Ok(s) => s,
        Err(ModelError::Target(t)) => return Err(Error::from(t)),
        Err(_) => return Ok(Vec::new()),
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

pub fn run(ctx: &mut Ctx<'_>, select: &Select, va_arg: &str, want_explain: bool) -> Result<()> {
    let va = parse_va(ctx, va_arg)?;
    let root = resolve_root(ctx, select)?;
    let view = if root.mode == SatpMode::Bare {
        Translate::bare(root, va)
    } else {
        require_sv39(&root)?;
        let ram = ctx.ram;
        let t = translate(ctx.target()?, root.root, va, ram)?;
        let owner = match t.pa() {
            Some(pa) => owner_of(ctx, pa)?,
            None => Vec::new(),
        };
        let symbol = crate::symbolize::name(ctx.symbols(), va.0);
        Translate::walked(root, t, owner, symbol)
    };
    let fault = view.fault().map(Error::NoTranslation);
    if ctx.json {
        ctx.json(&view)?;
    } else {
        for l in view.lines(want_explain) {
            writeln!(ctx.out, "{l}")?;
        }
    }
    match fault {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
