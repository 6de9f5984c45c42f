//! closefuzz: what happens when the two ends of a connection close, shut down,
//! write and read in every order — predicted by a model, checked against real sockets.

pub mod exec;
pub mod model;
pub mod step;
pub mod transport;
pub mod script;
pub mod gen;
pub mod run;
