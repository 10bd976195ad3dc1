//! lameduck: placeholder while the core lands.
