<?php
/**
 * phpMyAdmin configuration of the phpmyadmin image: one server, MySQL's
 * Service, with cookie login (users type their MySQL account).
 */

declare(strict_types=1);

// The cookie encryption secret must be 32 bytes and the same in every
// worker and after a restart: derived from the pod's TLS key (a mounted
// Secret) rather than kept in the image.
$cfg['blowfish_secret'] = substr(
    hash('sha256', 'phpmyadmin cookies|' . (string) @file_get_contents('/run/secrets/ft-tls/tls.key'), true),
    0,
    32
);

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

// Behind the nginx front at https://<host>/phpmyadmin/ (it sets these
// headers): absolute URLs, redirects and the cookie path get the prefix.
$forwardedHost = $_SERVER['HTTP_X_FORWARDED_HOST'] ?? '';
if (($_SERVER['HTTP_X_FORWARDED_PREFIX'] ?? '') === '/phpmyadmin'
    && preg_match('/^[A-Za-z0-9.:\[\]-]+$/', $forwardedHost) === 1) {
    $cfg['PmaAbsoluteUri'] = 'https://' . $forwardedHost . '/phpmyadmin/';
}
