<?php
// Sign a paygate merchant request with PHP's hash and openssl extensions.
//
// Environment: PAYGATE_MERCHANT, PAYGATE_ALGORITHM (hmac-sha256 | rsa-sha256; default
// hmac-sha256), PAYGATE_SECRET (hmac) or PAYGATE_PRIVATE_KEY (path of a PEM private key),
// PAYGATE_METHOD, PAYGATE_URI (path plus "?" and the query, exactly as sent),
// PAYGATE_BODY_FILE (optional), PAYGATE_TIMESTAMP and PAYGATE_NONCE (optional).
// Prints the four X-Paygate-* headers, one "Name: value" per line.

// Five lines, each ending in "\n"; the body as raw bytes.
function paygate_canonical(string $method, string $uri, string $ts, string $nonce, string $body): string {
    return "$method\n$uri\n$ts\n$nonce\n$body\n";
}

function paygate_sign(string $algorithm, string $message): string {
    switch ($algorithm) {
        case 'hmac-sha256':
            return base64_encode(hash_hmac('sha256', $message, getenv('PAYGATE_SECRET'), true));
        case 'rsa-sha256': // RSASSA-PKCS1-v1_5 over SHA-256
            $key = openssl_pkey_get_private(file_get_contents(getenv('PAYGATE_PRIVATE_KEY')));
            if ($key === false || !openssl_sign($message, $sig, $key, OPENSSL_ALGO_SHA256)) {
                throw new RuntimeException('rsa-sha256: ' . openssl_error_string());
            }
            return base64_encode($sig);
    }
    throw new InvalidArgumentException("unknown algorithm $algorithm");
}

$bodyFile = getenv('PAYGATE_BODY_FILE');
$body = $bodyFile ? file_get_contents($bodyFile) : '';
$ts = getenv('PAYGATE_TIMESTAMP') ?: (string) time();
$nonce = getenv('PAYGATE_NONCE') ?: bin2hex(random_bytes(16));
$msg = paygate_canonical(getenv('PAYGATE_METHOD'), getenv('PAYGATE_URI'), $ts, $nonce, $body);
echo 'X-Paygate-Merchant: ' . getenv('PAYGATE_MERCHANT') . "\n";
echo "X-Paygate-Timestamp: $ts\n";
echo "X-Paygate-Nonce: $nonce\n";
echo 'X-Paygate-Signature: ' . paygate_sign(getenv('PAYGATE_ALGORITHM') ?: 'hmac-sha256', $msg) . "\n";
