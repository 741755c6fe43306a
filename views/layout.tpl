{{%AUTOESCAPE context="HTML"}}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{{TITLE}} · {{SITE_NAME}}</title>
<link rel="stylesheet" href="/static/ccr.css?v={{STATIC_VER}}">
<link rel="icon" type="image/svg+xml" href="/static/favicon.svg?v={{STATIC_VER}}">
<script src="/static/ccr.js?v={{STATIC_VER}}" defer></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to main content</a>
<header class="site-header">
<div class="wrap header-inner">
<a class="brand" href="/"><span class="brand-mark" aria-hidden="true"></span>{{SITE_NAME}}</a>
<nav class="site-nav" aria-label="Main">
<ul>
{{#NAV_CUSTOMER}}
<li><a href="/tickets">My tickets</a></li>
<li><a href="/tickets/new">New ticket</a></li>
<li><a href="/account">Account</a></li>
{{/NAV_CUSTOMER}}
{{#NAV_AGENT}}
<li><a href="/tickets">Assigned to me</a></li>
<li><a href="/replies">Saved replies</a></li>
<li><a href="/account">Account</a></li>
{{/NAV_AGENT}}
{{#NAV_ADMIN}}
<li><a href="/tickets">All tickets</a></li>
<li><a href="/tickets?assigned=none">Unassigned</a></li>
<li><a href="/admin/agents">Agents</a></li>
<li><a href="/admin/mail">Rejected mail</a></li>
<li><a href="/admin/reports">Reports</a></li>
<li><a href="/admin/webhooks">Webhooks</a></li>
<li><a href="/replies">Saved replies</a></li>
<li><a href="/account">Account</a></li>
{{/NAV_ADMIN}}
{{#NAV_ANON}}
<li><a href="/login">Log in</a></li>
<li><a href="/register">Register</a></li>
{{/NAV_ANON}}
</ul>
</nav>
{{#USER}}
<div class="user-box">
<p class="user-id"><span class="visually-hidden">Logged in as </span><span class="user-name">{{USER_NAME}}</span> <span class="user-role">{{USER_ROLE}}</span></p>
{{#AVAILABILITY}}
<form class="availability-form" method="post" action="/account/availability">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<input type="hidden" name="next" value="{{AVAIL_NEXT}}">
{{#IS_AVAILABLE}}
<input type="hidden" name="available" value="0">
<span class="badge badge-resolved" id="availability-state">Available</span>
<button type="submit" class="btn btn-small btn-ghost" aria-describedby="availability-state">Go unavailable</button>
{{/IS_AVAILABLE}}
{{#IS_UNAVAILABLE}}
<input type="hidden" name="available" value="1">
<span class="badge badge-closed" id="availability-state">Unavailable</span>
<button type="submit" class="btn btn-small btn-ghost" aria-describedby="availability-state">Go available</button>
{{/IS_UNAVAILABLE}}
</form>
{{/AVAILABILITY}}
<form class="logout-form" method="post" action="/logout">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small btn-ghost">Log out</button>
</form>
</div>
{{/USER}}
</div>
</header>
<main id="main" class="wrap" tabindex="-1">
{{#FLASH}}
<div class="flash flash-{{FLASH_KIND}}" role="status"><p>{{FLASH_TEXT}}</p></div>
{{/FLASH}}
{{>BODY}}
</main>
<footer class="site-footer">
<div class="wrap"><p>{{SITE_NAME}} · Customer support</p></div>
</footer>
</body>
</html>
