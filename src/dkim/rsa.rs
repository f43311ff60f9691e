//! RSA-2048 key generation. ring signs with RSA but cannot make RSA keys, so sponts finds the two
//! primes itself (random odd numbers from ring's system RNG, trial division, then Miller-Rabin
//! with random bases) over `num-bigint`, and writes the key as PKCS#8 DER, which ring loads and
//! checks (p·q = n, the CRT exponents) like any other key. A small DER writer does the encoding.

use anyhow::{Result, anyhow};
use num_bigint::BigUint;
use ring::rand::{SecureRandom, SystemRandom};

/// The modulus length: what large mailbox providers expect (1024 is refused, 4096 does not fit
/// a single TXT string and is slow to sign).
pub const BITS: u64 = 2048;
const E: u32 = 65_537;
/// Miller-Rabin rounds with random bases for a random 1024-bit candidate: FIPS 186-4 table C.2
/// asks 5 for an error below 2^-100; a few more cost little.
const ROUNDS: usize = 8;

/// A new key pair: (PKCS#8 DER private key, SubjectPublicKeyInfo DER public key).
pub fn generate() -> Result<(Vec<u8>, Vec<u8>)> {
    let rng = SystemRandom::new();
    let small = small_primes(2000);
    let e = BigUint::from(E);
    let one = BigUint::from(1u32);
    loop {
        let p = prime(&rng, BITS / 2, &small)?;
        let q = prime(&rng, BITS / 2, &small)?;
        // ring wants p > q; equal primes would be a broken RNG.
        let (p, q) = match p.cmp(&q) {
            std::cmp::Ordering::Greater => (p, q),
            std::cmp::Ordering::Less => (q, p),
            std::cmp::Ordering::Equal => continue,
        };
        let n = &p * &q;
        if n.bits() != BITS {
            continue;
        }
        let (p1, q1) = (&p - &one, &q - &one);
        let phi = &p1 * &q1;
        // e must be invertible (p ≡ 1 mod e is possible, though rare).
        let Some(d) = e.modinv(&phi) else { continue };
        let dp = &d % &p1;
        let dq = &d % &q1;
        let qinv = q
            .modinv(&p)
            .ok_or_else(|| anyhow!("q has no inverse mod p"))?;
        let ints = [&BigUint::from(0u32), &n, &e, &d, &p, &q, &dp, &dq, &qinv];
        let pkcs1 = der::sequence(
            &ints
                .iter()
                .map(|i| der::integer(&i.to_bytes_be()))
                .collect::<Vec<_>>()
                .concat(),
        );
        let pkcs8 = der::sequence(
            &[
                der::integer(&[0]),
                der::rsa_algorithm(),
                der::tlv(0x04, &pkcs1),
            ]
            .concat(),
        );
        return Ok((
            pkcs8,
            spki(&der::sequence(
                &[
                    der::integer(&n.to_bytes_be()),
                    der::integer(&e.to_bytes_be()),
                ]
                .concat(),
            )),
        ));
    }
}

/// The SubjectPublicKeyInfo of an RSAPublicKey (PKCS#1), as DKIM records carry it.
pub fn spki(rsa_public_key: &[u8]) -> Vec<u8> {
    der::sequence(
        &[
            der::rsa_algorithm(),
            der::tlv(0x03, &[&[0u8][..], rsa_public_key].concat()),
        ]
        .concat(),
    )
}

fn prime(rng: &SystemRandom, bits: u64, small: &[u32]) -> Result<BigUint> {
    let mut bytes = vec![0u8; (bits / 8) as usize];
    loop {
        rng.fill(&mut bytes)
            .map_err(|_| anyhow!("the system's random number generator failed"))?;
        // The top two bits set, so two such primes make a modulus of exactly 2·bits; odd.
        bytes[0] |= 0xc0;
        let last = bytes.len() - 1;
        bytes[last] |= 1;
        let candidate = BigUint::from_bytes_be(&bytes);
        if small
            .iter()
            .any(|&s| (&candidate % s) == BigUint::from(0u32))
        {
            continue;
        }
        if miller_rabin(rng, &candidate)? {
            return Ok(candidate);
        }
    }
}

fn miller_rabin(rng: &SystemRandom, n: &BigUint) -> Result<bool> {
    let one = BigUint::from(1u32);
    let two = BigUint::from(2u32);
    let n1 = n - &one;
    let s = n1.trailing_zeros().unwrap_or(0);
    let d = &n1 >> s;
    let mut bytes = vec![0u8; n.to_bytes_be().len()];
    'round: for _ in 0..ROUNDS {
        // A random base in [2, n-2].
        rng.fill(&mut bytes)
            .map_err(|_| anyhow!("the system's random number generator failed"))?;
        let a = BigUint::from_bytes_be(&bytes) % (n - 3u32) + &two;
        let mut x = a.modpow(&d, n);
        if x == one || x == n1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n1 {
                continue 'round;
            }
        }
        return Ok(false);
    }
    Ok(true)
}

/// The primes below `limit` (sieve of Eratosthenes), for trial division.
fn small_primes(limit: usize) -> Vec<u32> {
    let mut composite = vec![false; limit];
    let mut primes = Vec::new();
    for i in 2..limit {
        if !composite[i] {
            primes.push(i as u32);
            for j in (i * i..limit).step_by(i) {
                composite[j] = true;
            }
        }
    }
    primes
}

/// Just enough DER for RSA keys.
mod der {
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    pub fn sequence(content: &[u8]) -> Vec<u8> {
        tlv(0x30, content)
    }

    /// A non-negative INTEGER from big-endian bytes: minimal, with a 0 byte where the top bit is set.
    pub fn integer(be: &[u8]) -> Vec<u8> {
        let trimmed: Vec<u8> = be.iter().copied().skip_while(|&b| b == 0).collect();
        let mut content = Vec::with_capacity(trimmed.len() + 1);
        if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
            content.push(0);
        }
        content.extend(trimmed);
        tlv(0x02, &content)
    }

    /// AlgorithmIdentifier rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
    pub fn rsa_algorithm() -> Vec<u8> {
        sequence(
            &[
                &[
                    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
                ][..],
                &[0x05, 0x00],
            ]
            .concat(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{
        KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
    };

    #[test]
    fn a_generated_key_loads_in_ring_and_signs() {
        let (pkcs8, spki_der) = generate().unwrap();
        let pair = RsaKeyPair::from_pkcs8(&pkcs8).expect("ring accepts the key");
        assert_eq!(pair.public().modulus_len(), 256);
        assert_eq!(spki(pair.public_key().as_ref()), spki_der);
        let mut sig = vec![0; 256];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            b"message",
            &mut sig,
        )
        .unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())
            .verify(b"message", &sig)
            .expect("verifies");
    }

    #[test]
    fn miller_rabin_tells_primes_from_composites() {
        let rng = SystemRandom::new();
        // 2^127 - 1 is prime; a Carmichael number and a product of two primes are not.
        let m127 = (BigUint::from(1u32) << 127u32) - 1u32;
        assert!(miller_rabin(&rng, &m127).unwrap());
        assert!(!miller_rabin(&rng, &BigUint::from(561u32)).unwrap());
        assert!(!miller_rabin(&rng, &(&m127 * BigUint::from(1_000_003u32))).unwrap());
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der::integer(&[0, 0, 0x7f]), vec![2, 1, 0x7f]);
        assert_eq!(der::integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der::integer(&[]), vec![2, 1, 0]);
        assert_eq!(der::tlv(4, &[0; 300])[..4], [4, 0x82, 1, 44]);
    }
}
