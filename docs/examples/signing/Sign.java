// Sign a paygate merchant request with the JDK only (Java 17+); run with `java Sign.java`.
//
// Environment: PAYGATE_MERCHANT, PAYGATE_ALGORITHM (hmac-sha256 | rsa-sha256 | ed25519;
// default hmac-sha256), PAYGATE_SECRET (hmac) or PAYGATE_PRIVATE_KEY (path of a PKCS#8 PEM
// private key), PAYGATE_METHOD, PAYGATE_URI (path plus "?" and the query, exactly as sent),
// PAYGATE_BODY_FILE (optional), PAYGATE_TIMESTAMP and PAYGATE_NONCE (optional).
// Prints the four X-Paygate-* headers, one "Name: value" per line.
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import java.util.HexFormat;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Sign {
    // Five lines, each ending in "\n"; the body as raw bytes.
    static byte[] canonical(String method, String uri, String ts, String nonce, byte[] body) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.writeBytes((method + "\n" + uri + "\n" + ts + "\n" + nonce + "\n").getBytes(StandardCharsets.UTF_8));
        b.writeBytes(body);
        b.write('\n');
        return b.toByteArray();
    }

    static PrivateKey pkcs8(String path, String keyAlgorithm) throws Exception {
        String pem = Files.readString(Path.of(path)).replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        return KeyFactory.getInstance(keyAlgorithm).generatePrivate(new PKCS8EncodedKeySpec(Base64.getDecoder().decode(pem)));
    }

    static byte[] sign(String algorithm, byte[] message) throws Exception {
        switch (algorithm) {
            case "hmac-sha256": {
                Mac mac = Mac.getInstance("HmacSHA256");
                mac.init(new SecretKeySpec(System.getenv("PAYGATE_SECRET").getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
                return mac.doFinal(message);
            }
            case "rsa-sha256": { // RSASSA-PKCS1-v1_5 over SHA-256
                Signature s = Signature.getInstance("SHA256withRSA");
                s.initSign(pkcs8(System.getenv("PAYGATE_PRIVATE_KEY"), "RSA"));
                s.update(message);
                return s.sign();
            }
            case "ed25519": {
                Signature s = Signature.getInstance("Ed25519");
                s.initSign(pkcs8(System.getenv("PAYGATE_PRIVATE_KEY"), "Ed25519"));
                s.update(message);
                return s.sign();
            }
            default:
                throw new IllegalArgumentException("unknown algorithm " + algorithm);
        }
    }

    static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? fallback : v;
    }

    public static void main(String[] args) throws Exception {
        String bodyFile = env("PAYGATE_BODY_FILE", "");
        byte[] body = bodyFile.isEmpty() ? new byte[0] : Files.readAllBytes(Path.of(bodyFile));
        String ts = env("PAYGATE_TIMESTAMP", Long.toString(System.currentTimeMillis() / 1000));
        byte[] rnd = new byte[16];
        new SecureRandom().nextBytes(rnd);
        String nonce = env("PAYGATE_NONCE", HexFormat.of().formatHex(rnd));
        byte[] msg = canonical(System.getenv("PAYGATE_METHOD"), System.getenv("PAYGATE_URI"), ts, nonce, body);
        String sig = Base64.getEncoder().encodeToString(sign(env("PAYGATE_ALGORITHM", "hmac-sha256"), msg));
        System.out.println("X-Paygate-Merchant: " + System.getenv("PAYGATE_MERCHANT"));
        System.out.println("X-Paygate-Timestamp: " + ts);
        System.out.println("X-Paygate-Nonce: " + nonce);
        System.out.println("X-Paygate-Signature: " + sig);
    }
}
