//! `kinspect satp [VALUE]`: decode satp.
//!
//! With a value, decode it offline (no target). Without, read every
//! hart's live satp. satp = MODE[63:60] ASID[59:44] PPN[43:0]; the root
//! page table is at PPN << 12.

use kinspect_sv39::{PhysAddr, Satp, SatpMode};
use serde::Serialize;

use super::Ctx;
use super::{Needs, Run};
use crate::error::Result;
use crate::target::Csr;

/// Decode satp: the mode, ASID and root page table.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
With VALUE, decode it offline (no QEMU needed):
  kinspect satp 0x8000000000087fff
Without, read every hart's live satp:
  kinspect satp

satp = MODE[63:60] ASID[59:44] PPN[43:0]; the root table is at PPN << 12.
MODE 0 is Bare (no translation), 8 Sv39, 9 Sv48, 10 Sv57; others are reserved.")]
pub struct Args {
    /// A satp value, hex (0x...) or decimal.
    #[arg(value_parser = crate::parse::parse_u64)]
    pub value: Option<u64>,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        match self.value {
            Some(_) => Needs::Nothing,
            None => Needs::Target {
                trusts_symbols: false,
            },
        }
    }

fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx, self.value)
    }
}


/// `--json` fields of one decoded satp.
#[derive(Debug, Serialize)]
pub struct SatpJson {
    /// The hart it was read from (live only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hart: Option<usize>,
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub satp: u64,
    /// "bare", "sv39", "sv48", "sv57" or {"reserved": N}.
    pub mode: SatpMode,
    /// The 4-bit MODE field.
    pub mode_bits: u8,
    pub asid: u16,
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub ppn: u64,
    /// The root page table's physical address (ppn << 12).
    pub root: PhysAddr,
}

fn decode(hart: Option<usize>, value: u64) -> SatpJson {
    let s = Satp(value);
    SatpJson {
        hart,
        satp: value,
        mode: s.mode(),
        mode_bits: s.mode().bits(),
        asid: s.asid(),
        ppn: s.ppn(),
        root: s.root(),
    }
}

fn mode_note(mode: SatpMode) -> &'static str {
    match mode {
        SatpMode::Bare => "no translation: virtual = physical",
        SatpMode::Sv39 => "3 levels, 39-bit virtual addresses",
        SatpMode::Sv48 => "4 levels, 48-bit virtual addresses",
        SatpMode::Sv57 => "5 levels, 57-bit virtual addresses",
        SatpMode::Reserved(_) => "reserved: a hart does not accept this mode",
    }
}

pub fn run(ctx: &mut Ctx<'_>, value: Option<u64>) -> Result<()> {
    if let Some(v) = value {
        let d = decode(None, v);
        if ctx.json {
            return ctx.json(&d);
        }
        writeln!(ctx.out, "satp  {:#018x}", d.satp)?;
        writeln!(
            ctx.out,
            "mode  {} ({}: {})",
            d.mode_bits,
            d.mode,
            mode_note(d.mode)
        )?;
        writeln!(ctx.out, "asid  {}", d.asid)?;
        writeln!(ctx.out, "ppn   {:#x}", d.ppn)?;
        writeln!(ctx.out, "root  {:#018x} (ppn << 12)", d.root)?;
        return Ok(());
    }
    let target = ctx.target()?;
    let harts = target.harts()?;
    let mut rows = Vec::new();
    for h in harts {
        let v = target.csr(h, Csr::Satp)?;
        rows.push(decode(Some(h), v));
    }
    if ctx.json {
        return ctx.json(&rows);
    }
    writeln!(ctx.out, "hart  satp                mode  asid  root")?;
    for r in &rows {
        writeln!(
            ctx.out,
            "{:<5} {:#018x}  {:<5} {:<5} {:#018x}",
            r.hart.unwrap_or(0),
            r.satp,
            r.mode.to_string(),
            r.asid,
            r.root
        )?;
    }
    Ok(())
}
