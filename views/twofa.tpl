{{%AUTOESCAPE context="HTML"}}
<div class="medium stack">
<h1>Two-factor sign-in</h1>
{{#ENROL}}
<section class="card" aria-labelledby="enrol-h">
<h2 id="enrol-h">Set up an authenticator app</h2>
{{#REQUIRED}}
<p class="form-error" role="alert">Your role must sign in with a code as well as the password. Set it up to continue.</p>
{{/REQUIRED}}
<p>After your password you will be asked for a 6-digit code from an authenticator app (any app that supports TOTP). Scan this QR code with the app, or enter the setup key by hand.</p>
<figure class="qr">
<svg class="qr-code" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{QR_SIZE}} {{QR_SIZE}}" width="220" height="220" role="img" aria-labelledby="qr-title" shape-rendering="crispEdges">
<title id="qr-title">QR code of the setup link shown below as text</title>
<rect width="{{QR_SIZE}}" height="{{QR_SIZE}}" fill="#ffffff"/>
<path d="{{QR_PATH}}" fill="#000000"/>
</svg>
<figcaption>
<dl class="props">
<div><dt>Setup key</dt><dd><code id="totp-secret">{{SECRET}}</code></dd></div>
<div><dt>Setup link</dt><dd><code id="totp-uri">{{URI}}</code></dd></div>
<div><dt>Type</dt><dd>Time-based, 6 digits, every 30 seconds</dd></div>
</dl>
</figcaption>
</figure>
<form class="form" method="post" action="/account/2fa" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<div class="field">
<label for="code">Code from the app</label>
<input type="text" id="code" name="code" class="input-code" inputmode="numeric" autocomplete="one-time-code" spellcheck="false" required aria-describedby="code-hint{{#ERR_CODE}} code-error{{/ERR_CODE}}"{{#ERR_CODE}} aria-invalid="true"{{/ERR_CODE}}>
<p class="hint" id="code-hint">6 digits, as the app shows them now.</p>
{{#ERR_CODE}}
<p class="field-error" id="code-error" role="alert">{{MSG}}</p>
{{/ERR_CODE}}
</div>
<div class="actions">
<button type="submit" class="btn btn-primary">Turn on two-factor sign-in</button>
</div>
</form>
</section>
{{/ENROL}}
{{#CODES}}
<section class="card" aria-labelledby="codes-h">
<h2 id="codes-h">Two-factor sign-in is on</h2>
<p role="status">Save these recovery codes somewhere safe. Each one signs you in once in place of a code from the app, if you lose it. They are shown only now.</p>
<ol class="recovery-codes" id="recovery-codes">
{{#CODE}}
<li><code>{{CODE}}</code></li>
{{/CODE}}
</ol>
<p class="actions"><a class="btn btn-primary" href="/tickets">I have saved them</a></p>
</section>
{{/CODES}}
{{#ON}}
<section class="card" aria-labelledby="on-h">
<h2 id="on-h">Two-factor sign-in is on</h2>
<p>Each sign-in asks for a code from your authenticator app after the password.</p>
<p>Recovery codes left: <strong id="recovery-left">{{LEFT}}</strong> of 10.</p>
{{#REQUIRED}}
<p>Your role must use two-factor sign-in, so it cannot be turned off here. If you lose your app and your recovery codes, an admin can reset it.</p>
{{/REQUIRED}}
</section>
{{#CAN_DISABLE}}
<section class="card card-danger" aria-labelledby="off-h">
<h2 id="off-h">Turn off two-factor sign-in</h2>
<form class="form" method="post" action="/account/2fa" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<div class="field">
<label for="off_password">Password</label>
<input type="password" id="off_password" name="password" autocomplete="current-password" required{{#ERR_PASSWORD}} aria-invalid="true" aria-describedby="off_password-error"{{/ERR_PASSWORD}}>
{{#ERR_PASSWORD}}
<p class="field-error" id="off_password-error">{{MSG}}</p>
{{/ERR_PASSWORD}}
</div>
<div class="field">
<label for="off_code">Code from the app, or a recovery code</label>
<input type="text" id="off_code" name="code" class="input-code" autocomplete="one-time-code" spellcheck="false" required{{#ERR_CODE}} aria-invalid="true" aria-describedby="off_code-error"{{/ERR_CODE}}>
{{#ERR_CODE}}
<p class="field-error" id="off_code-error">{{MSG}}</p>
{{/ERR_CODE}}
</div>
<div class="actions">
<button type="submit" class="btn btn-danger">Turn off</button>
</div>
</form>
</section>
{{/CAN_DISABLE}}
{{/ON}}
</div>
