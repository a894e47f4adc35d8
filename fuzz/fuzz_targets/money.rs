//! Money and currency parsing: any code and any amount are accepted or
//! refused without a panic; what is accepted round-trips, and arithmetic
//! that would overflow is refused.
#![no_main]

use domain::{Currency, Money};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, i64, i64)| {
    let (code, a, b) = input;
    let Ok(currency) = Currency::parse(code) else {
        return;
    };
    assert_eq!(Currency::parse(currency.code()), Ok(currency));
    assert_eq!(Currency::parse(&code.to_ascii_lowercase()), Ok(currency));
    let (Ok(x), Ok(y)) = (Money::new(a, currency), Money::new(b, currency)) else {
        assert!(a < 0 || b < 0, "a non-negative amount is money");
        return;
    };
    assert_eq!(x.minor(), a);
    match x.checked_add(y) {
        Ok(sum) => assert_eq!(Some(sum.minor()), a.checked_add(b)),
        Err(_) => assert!(a.checked_add(b).is_none()),
    }
});
