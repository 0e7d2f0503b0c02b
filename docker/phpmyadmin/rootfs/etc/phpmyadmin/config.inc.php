<?php
/**
 * phpMyAdmin configuration of the phpmyadmin image: one server, MySQL's
 * Service, with cookie login (users type their MySQL account).
 */

declare(strict_types=1);

// The cookie encryption key: 32 random bytes of the pod's own Secret
// (ft-phpmyadmin/blowfish-secret, 64 hex digits), through supervise's
// private copy for php-fpm's user. Without it phpMyAdmin serves no login:
// a key anyone could know would let them forge and read login cookies.
$secretFile = '/run/private/php/blowfish-secret';
$secretHex = is_readable($secretFile) ? trim((string) file_get_contents($secretFile)) : '';
if (preg_match('/^[0-9a-f]{64}$/', $secretHex) !== 1) {
    error_log("phpMyAdmin: no valid cookie key in {$secretFile} (64 hex digits expected); refusing to serve");
    http_response_code(503);
    header('Content-Type: text/plain');
    exit("phpMyAdmin is not configured: its cookie key is missing.\n");
}
$cfg['blowfish_secret'] = sodium_hex2bin($secretHex);

$i = 1;
$cfg['Servers'][$i]['auth_type'] = 'cookie';
$cfg['Servers'][$i]['host'] = 'mysql';
$cfg['Servers'][$i]['port'] = '3306';
$cfg['Servers'][$i]['connect_type'] = 'tcp';
$cfg['Servers'][$i]['compress'] = false;
$cfg['Servers'][$i]['AllowNoPassword'] = false;

$cfg['TempDir'] = '/tmp';
$cfg['UploadDir'] = '';
$cfg['SaveDir'] = '';
$cfg['VersionCheck'] = false;
$cfg['SendErrorReports'] = 'never';
$cfg['ShowPhpInfo'] = false;
// No compressed pages: they carry the CSRF token, which compression over
// TLS would leak (BREACH).
$cfg['OBGzip'] = false;

// Behind the nginx front at https://<host>/phpmyadmin/ (it sets these
// headers): absolute URLs, redirects and the cookie path get the prefix.
$forwardedHost = $_SERVER['HTTP_X_FORWARDED_HOST'] ?? '';
if (($_SERVER['HTTP_X_FORWARDED_PREFIX'] ?? '') === '/phpmyadmin'
    && preg_match('/^[A-Za-z0-9.:\[\]-]+$/', $forwardedHost) === 1) {
    $cfg['PmaAbsoluteUri'] = 'https://' . $forwardedHost . '/phpmyadmin/';
}
