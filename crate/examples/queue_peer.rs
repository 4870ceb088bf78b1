//! A Rust end of a SharedQueue that Node (or another Rust program) holds the other end of.
//!
//! `queue_peer produce <name> <producer id> <count>` puts the strings `"<id>:<i>"` with the
//! tag the Node binding gives strings (1), so Node's `get()` returns them as strings;
//! `queue_peer consume <name>` takes messages until the queue is ended and prints one line
//! per message: its tag and its bytes in hex.
use std::process::ExitCode;

use shmkit_core::queue::SharedQueue;
use shmkit_core::Error;

/// The tag the Node binding gives a string message (UTF-8 bytes).
const TAG_STRING: u8 = 1;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("queue_peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Error> {
    let usage = || Error::InvalidArgument("usage: queue_peer produce <name> <id> <count> | consume <name>".into());
    let (role, name) = match args {
        [role, name, ..] => (role.as_str(), name.as_str()),
        _ => return Err(usage()),
    };
    let queue = SharedQueue::open(name)?;
    match (role, &args[2..]) {
        ("produce", [id, count]) => {
            let count: u32 = count.parse().map_err(|_| usage())?;
            for i in 0..count {
                queue.put(TAG_STRING, format!("{id}:{i}").as_bytes(), None)?;
            }
            Ok(())
        }
        ("consume", []) => loop {
            match queue.get(None) {
                Ok(message) => {
                    let hex: String = message.bytes.iter().map(|b| format!("{b:02x}")).collect();
                    println!("{} {hex}", message.tag);
                }
                Err(Error::QueueEnded) => return Ok(()),
                Err(e) => return Err(e),
            }
        },
        _ => Err(usage()),
    }
}
