//! scratch
use closefuzz::exec::{run_local, Case};
use closefuzz::step::{Dir, Network, Op, Sock, Start, Step, Which};
use closefuzz::transport::Transport;

const AB: Dir = Dir {
    from: Sock::A,
    to: Sock::B,
};
const BA: Dir = Dir {
    from: Sock::B,
    to: Sock::A,
};

#[test]
fn explore() {
    let steps = vec![
        Step::call(Sock::A, Op::Write(5)),
        Step::Deliver {
            dir: AB,
            which: Which::Nth(1),
        },
        Step::Held { dir: BA },
        Step::Deliver {
            dir: BA,
            which: Which::All,
        },
        Step::call(Sock::B, Op::Read(10)),
        Step::call(Sock::A, Op::Close),
        Step::call(Sock::B, Op::Close),
        Step::Held { dir: AB },
        Step::Deliver {
            dir: AB,
            which: Which::Nth(1),
        },
        Step::Deliver {
            dir: BA,
            which: Which::Nth(1),
        },
        Step::call(Sock::A, Op::State),
        Step::call(Sock::B, Op::State),
        Step::Deliver {
            dir: AB,
            which: Which::All,
        },
        Step::Deliver {
            dir: BA,
            which: Which::All,
        },
        Step::call(Sock::A, Op::State),
        Step::call(Sock::B, Op::State),
    ];
    for t in [Transport::Tcp4, Transport::Tcp6] {
        let case = Case::new(t, Start::Connected, steps.clone()).with_network(Network::Held);
        let run = match run_local(&case) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ERR {e} pid {}", std::process::id());
                std::thread::sleep(std::time::Duration::from_secs(25));
                panic!()
            }
        };
        for (i, s) in case.steps.iter().enumerate() {
            println!(
                "{s:<20} => {:<20} {}",
                run.steps[i].0.outcome.to_string(),
                closefuzz::step::wire_segs(&run.wire[i])
            );
        }
        println!("elapsed {:?}", run.elapsed);
    }
}
