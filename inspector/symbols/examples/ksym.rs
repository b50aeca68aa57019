//! A small command line over kinspect-symbols, for trying the layer on an
//! ELF without a target and for the examples in docs/symbols.md.
//!
//! ```text
//! ksym ELF time              time opening and indexing
//! ksym ELF global NAME       a global's address, type and size
//! ksym ELF type NAME         a type's layout (members, enumerators)
//! ksym ELF sym ADDR          symbolize an address
//! ksym ELF lines ADDR        source lines (with inlining) for an address
//! ksym ELF eval EXPR         evaluate an expression without target memory
//! ksym ELF addr EXPR         the expression as an address argument, over the
//!                            ELF's initial data (.data as linked, .bss zeros)
//! ksym ELF print EXPR        load and print the object EXPR names, over the
//!                            ELF's initial data
//! ```

use std::process::ExitCode;
use std::time::Instant;

use kinspect_symbols::{Evaluated, NoMemory, Symbols, TypeKind};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ksym: {e}");
            ExitCode::FAILURE
        }
    }
}

fn num(s: &str) -> Result<u64, String> {
    let t = s.trim_start_matches("0x");
    u64::from_str_radix(t, 16).map_err(|e| format!("bad address `{s}`: {e}"))
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [elf, cmd, rest @ ..] = args else {
        return Err(
            "usage: ksym ELF (time | global NAME | type NAME | sym ADDR | lines ADDR | eval EXPR | addr EXPR | print EXPR)"
                .into(),
        );
    };
    let t0 = Instant::now();
    let syms = Symbols::open(elf)?;
    let opened = t0.elapsed();
    let arg = rest.join(" ");
    match cmd.as_str() {
        "time" => {
            let t1 = Instant::now();
            syms.index_now()?;
            let indexed = t1.elapsed();
            let t2 = Instant::now();
            let g = syms.global("proc")?;
            let looked = t2.elapsed();
            println!(
                "open (ELF symbols, DWARF sections): {:.2} ms",
                opened.as_secs_f64() * 1e3
            );
            println!(
                "first DWARF use (name index):       {:.2} ms",
                indexed.as_secs_f64() * 1e3
            );
            println!(
                "global(\"proc\") + its type size:      {:.3} ms ({} bytes)",
                looked.as_secs_f64() * 1e3,
                g.size.unwrap_or(0)
            );
        }
        "global" => {
            let g = syms.global(&arg)?;
            let ty =
                g.ty.map(|t| syms.type_name(t))
                    .unwrap_or_else(|| "(no DWARF type)".into());
            println!(
                "{} at {:#x}: {ty}, {} bytes",
                g.name,
                g.addr,
                g.size.map(|s| s.to_string()).unwrap_or("?".into())
            );
        }
        "type" => {
            let id = syms.type_named(&arg)?;
            let t = syms.resolve(id)?;
            println!("{} ({} bytes)", syms.type_name(id), syms.size_of(id)?);
            match &t.kind {
                TypeKind::Struct(s) => {
                    for m in &s.members {
                        let name = m.name.as_deref().unwrap_or("<anonymous>");
                        match m.bits {
                            Some(b) => println!(
                                "  bit {:>5}  {:>4}  {name}: {} : {}",
                                b.bit_offset,
                                syms.size_of(m.ty)?,
                                syms.type_name(m.ty),
                                b.bit_size
                            ),
                            None => println!(
                                "  {:>9}  {:>4}  {name}: {}",
                                m.offset,
                                syms.size_of(m.ty)?,
                                syms.type_name(m.ty)
                            ),
                        }
                    }
                    if let Some(vp) = &s.variant_part {
                        for v in &vp.variants {
                            let d = v
                                .discr_value
                                .map(|d| d.to_string())
                                .unwrap_or("(default)".into());
                            println!(
                                "  variant {d}: {} {}",
                                v.member.name.as_deref().unwrap_or("?"),
                                syms.type_name(v.member.ty)
                            );
                        }
                    }
                }
                TypeKind::Enum(e) => {
                    for en in &e.enumerators {
                        println!("  {} = {}", en.name, en.value);
                    }
                }
                _ => {}
            }
        }
        "sym" => {
            let a = num(&arg)?;
            match syms.symbolize(a) {
                Some((name, off)) => println!("{a:#x} = {name}+{off:#x}"),
                None => println!("{a:#x}: no symbol"),
            }
        }
        "lines" => {
            let a = num(&arg)?;
            for f in syms.lines(a)? {
                println!("{f}");
            }
        }
        "eval" => match syms.eval(&arg, &mut NoMemory)? {
            Evaluated::Place { addr, ty } => {
                let ty = ty
                    .map(|t| syms.type_name(t))
                    .unwrap_or_else(|| "(no DWARF type)".into());
                println!("{arg} is an object at {addr:#x} of type {ty}");
            }
            Evaluated::Value { value, .. } => println!("{arg} = {value:#x}"),
        },
        "addr" => {
            let a = syms.eval_address(&arg, &mut syms.file_memory())?;
            println!("{arg} = {a:#x}");
        }
        "print" => {
            let mut mem = syms.file_memory();
            match syms.eval(&arg, &mut mem)? {
                Evaluated::Place { addr, ty: Some(ty) } => {
                    println!("{arg} = {}", syms.load(&mut mem, addr, ty)?);
                }
                other => println!("{arg} = {:#x}", other.raw()),
            }
        }
        other => return Err(format!("unknown command `{other}`").into()),
    }
    Ok(())
}
