//! `From` conversions between a candidate's types and the final WASI 0.2 types, written as the
//! list of their variants, fields or flags (which the compiler checks against both definitions).

/// `enum A => B { X, Y(payload), }`: `From<A> for B`, each payload converted with `.into()`;
/// `enum A = B { ... }` both ways. `struct A => B { field, }` and `flags A => B { FLAG, }` alike.
macro_rules! convert {
    () => {};
    (enum $a:path = $b:path { $($variant:ident $(($payload:ident))?,)* } $($rest:tt)*) => {
        $crate::convert::convert!(enum $a => $b { $($variant $(($payload))?,)* });
        $crate::convert::convert!(enum $b => $a { $($variant $(($payload))?,)* });
        $crate::convert::convert!($($rest)*);
    };
    (enum $a:path => $b:path { $($variant:ident $(($payload:ident))?,)* } $($rest:tt)*) => {
        impl From<$a> for $b {
            fn from(value: $a) -> $b {
                use $a as Src;
                use $b as Dst;
                match value {
                    $(Src::$variant $(($payload))? => Dst::$variant $(($payload.into()))?,)*
                }
            }
        }
        $crate::convert::convert!($($rest)*);
    };
    (struct $a:path = $b:path { $($field:ident,)* } $($rest:tt)*) => {
        $crate::convert::convert!(struct $a => $b { $($field,)* });
        $crate::convert::convert!(struct $b => $a { $($field,)* });
        $crate::convert::convert!($($rest)*);
    };
    (struct $a:path => $b:path { $($field:ident,)* } $($rest:tt)*) => {
        impl From<$a> for $b {
            fn from(value: $a) -> $b {
                use $b as Dst;
                Dst { $($field: value.$field.into(),)* }
            }
        }
        $crate::convert::convert!($($rest)*);
    };
    (flags $a:path = $b:path { $($flag:ident,)* } $($rest:tt)*) => {
        $crate::convert::convert!(flags $a => $b { $($flag,)* });
        $crate::convert::convert!(flags $b => $a { $($flag,)* });
        $crate::convert::convert!($($rest)*);
    };
    (flags $a:path => $b:path { $($flag:ident,)* } $($rest:tt)*) => {
        impl From<$a> for $b {
            fn from(value: $a) -> $b {
                use $a as Src;
                use $b as Dst;
                let mut out = Dst::empty();
                $(if value.contains(Src::$flag) { out |= Dst::$flag; })*
                out
            }
        }
        $crate::convert::convert!($($rest)*);
    };
}

pub(crate) use convert;
