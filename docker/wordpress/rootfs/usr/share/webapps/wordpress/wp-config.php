<?php
/**
 * WordPress configuration of the wordpress image.
 *
 * The database is MySQL's Service; its password is read at every request
 * from supervise's private copy of the mounted Secret (readable by php-fpm's
 * user only), so no secret is written into the image. The site's address is the load balancer's (LB_IP, passed by
 * php-fpm's pool). Authentication keys and salts are not defined here:
 * WordPress then generates random ones once and keeps them in its database.
 * Uploads, plugins, themes and languages are on the volume at
 * /var/lib/wordpress (WP_CONTENT_DIR), WordPress itself in the image.
 */

define('DB_NAME', 'wordpress');
define('DB_USER', 'wordpress');
define('DB_PASSWORD', rtrim((string) @file_get_contents('/run/private/php/wordpress-db-password'), "\n"));
define('DB_HOST', 'mysql:3306');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');

$table_prefix = 'wp_';

$lb_ip = getenv('LB_IP');
if (is_string($lb_ip) && $lb_ip !== '') {
    define('WP_HOME', 'https://' . $lb_ip . ':5050');
    define('WP_SITEURL', 'https://' . $lb_ip . ':5050');
}
// What users make is on the volume (wp-content in the image links there).
define('WP_CONTENT_DIR', '/var/lib/wordpress/wp-content');
define('FORCE_SSL_ADMIN', true);
define('DISALLOW_FILE_EDIT', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_DEBUG', false);

if (!defined('ABSPATH')) {
    define('ABSPATH', __DIR__ . '/');
}

require_once ABSPATH . 'wp-settings.php';
