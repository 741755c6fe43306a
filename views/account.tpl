{{%AUTOESCAPE context="HTML"}}
<div class="medium stack">
<h1>Your account</h1>
<section class="card" aria-labelledby="profile-h">
<h2 id="profile-h">Profile</h2>
<dl class="props">
<div><dt>Name</dt><dd>{{FIRST_NAME}} {{LAST_NAME}}</dd></div>
<div><dt>Email</dt><dd>{{EMAIL}}</dd></div>
<div><dt>Role</dt><dd class="cap">{{ROLE}}</dd></div>
<div><dt>Member since</dt><dd>{{CREATED}}</dd></div>
</dl>
</section>
<section class="card" aria-labelledby="password-h">
<h2 id="password-h">Password</h2>
<p>Changing your password logs you out on every device.</p>
<p class="actions"><a class="btn" href="/password/change">Change password</a></p>
</section>
<section class="card" aria-labelledby="security-h">
<h2 id="security-h">Sign-in security</h2>
<p>Two-factor sign-in is <strong id="twofa-state">{{TWOFA_STATE}}</strong>.</p>
<p class="actions"><a class="btn" href="/account/2fa">Two-factor sign-in</a> <a class="btn" href="/account/sessions">Your sessions</a> <a class="btn" href="/account/tokens">API tokens</a></p>
</section>
{{#CAN_DELETE}}
<section class="card card-danger" aria-labelledby="delete-h">
<h2 id="delete-h">Delete account</h2>
<p>Your name and email are erased and you are logged out everywhere. Your tickets are kept without your personal data. This cannot be undone.</p>
<form class="form" method="post" action="/account/delete" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<div class="field">
<label for="delete_password">Enter your password to confirm</label>
<input type="password" id="delete_password" name="password" autocomplete="current-password" required{{#ERR_PASSWORD}} aria-invalid="true" aria-describedby="delete_password-error"{{/ERR_PASSWORD}}>
{{#ERR_PASSWORD}}
<p class="field-error" id="delete_password-error">{{MSG}}</p>
{{/ERR_PASSWORD}}
</div>
<div class="actions">
<button type="submit" class="btn btn-danger">Delete my account</button>
</div>
</form>
</section>
{{/CAN_DELETE}}
</div>
